import random

import numpy as np
import pytest
import torch

from bert_workbook import env


def test_seed_everything_makes_all_generators_repeat():
    env.seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    env.seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        env.seed_everything(bad)


def test_pick_device_is_cpu_without_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert env.pick_device() == expected


def test_model_setting_defaults_to_embedded(monkeypatch):
    monkeypatch.delenv(env.MODEL_ENV_VAR, raising=False)
    assert env.selected_model_name() == env.EMBEDDED
    monkeypatch.setenv(env.MODEL_ENV_VAR, "  ")
    assert env.selected_model_name() == env.EMBEDDED
    monkeypatch.setenv(env.MODEL_ENV_VAR, "bert-base-uncased")
    assert env.selected_model_name() == "bert-base-uncased"


def test_configure_hub_access_goes_offline_by_default(monkeypatch):
    monkeypatch.delenv(env.MODEL_ENV_VAR, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert env.configure_hub_access() is True


def test_configure_hub_access_leaves_hub_mode_online(monkeypatch):
    monkeypatch.setenv(env.MODEL_ENV_VAR, "bert-base-uncased")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert env.configure_hub_access() is False


def test_version_report_names_the_stack():
    report = env.version_report()
    for key in ("python", "torch", "transformers", "device", "model", "hub"):
        assert report[key]
    text = env.format_report(report)
    assert text.count("\n") == len(report) - 1


def test_not_in_colab():
    assert env.in_colab() is False


@pytest.mark.parametrize("value, offline", [("1", True), ("TRUE", True), ("0", False), ("", False)])
def test_offline_flag_reads_the_environment(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert env.offline_flag_set() is offline


def test_release_memory_runs_anywhere():
    from bert_workbook import env

    assert env.release_memory() is None  # gc + malloc_trim where glibc exists; never raises


def test_training_steps_are_cut_only_in_a_smoke_test(monkeypatch):
    monkeypatch.delenv(env.SMOKE_ENV_VAR, raising=False)
    assert not env.smoke_test() and env.training_steps(150) == 150
    monkeypatch.setenv(env.SMOKE_ENV_VAR, "1")
    monkeypatch.setattr(env, "_smoke_warned", False)
    assert env.smoke_test()
    with pytest.warns(UserWarning, match="mean nothing"):
        assert env.training_steps(150) == env.SMOKE_STEPS
    assert env.training_steps(1) == 1
    assert env.training_steps(150) == env.SMOKE_STEPS  # warned once is enough
    monkeypatch.setenv(env.SMOKE_ENV_VAR, "0")
    assert env.training_steps(150) == 150
