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


@pytest.mark.parametrize("cuda, mps, allow_mps, expected", [
    (False, False, False, "cpu"), (True, False, False, "cuda"), (True, True, True, "cuda"),
    (False, True, False, "cpu"), (False, True, True, "mps"),
])
def test_pick_device_prefers_cuda_then_mps_only_when_asked(monkeypatch, cuda, mps, allow_mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert env.pick_device(allow_mps=allow_mps) == expected


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


@pytest.mark.parametrize("value, offline", [("1", True), ("TRUE", True), ("0", False), ("", False)])
def test_offline_flag_reads_the_environment(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert env.offline_flag_set() is offline


def test_release_memory_collects_garbage_and_survives_a_libc_without_malloc_trim(monkeypatch):
    import ctypes
    import gc
    import weakref

    class Cycle:
        pass

    a = Cycle()
    a.self = a  # a reference cycle: only the garbage collector frees it
    alive = weakref.ref(a)
    del a
    gc.disable()
    try:
        env.release_memory()
        assert alive() is None
    finally:
        gc.enable()

    def no_libc(name):
        raise OSError(name)

    monkeypatch.setattr(ctypes, "CDLL", no_libc)  # macOS, Windows, musl
    env.release_memory()


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


def test_sample_size_and_timing_shape_shrink_only_in_a_smoke_test(monkeypatch):
    monkeypatch.delenv(env.SMOKE_ENV_VAR, raising=False)
    assert env.sample_size(1000) == 1000 and env.sample_size(3) == 3
    assert env.timing_shape(8, 128) == (8, 128)
    monkeypatch.setenv(env.SMOKE_ENV_VAR, "1")
    assert env.sample_size(1000) == env.SMOKE_SAMPLE and env.sample_size(3) == 3
    assert env.timing_shape(8, 128) == (1, 16) and env.timing_shape(8, 8) == (1, 8)


def test_repetitions_keep_two_draws_only_in_a_smoke_test(monkeypatch):
    monkeypatch.delenv(env.SMOKE_ENV_VAR, raising=False)
    assert env.repetitions(10) == range(10) and env.repetitions(1) == range(1)
    monkeypatch.setenv(env.SMOKE_ENV_VAR, "1")
    assert env.repetitions(10) == range(env.SMOKE_REPETITIONS) == range(2)  # the first draws, same seeds
    assert env.repetitions(1) == range(1)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", None, True])
def test_repetitions_refuse_what_is_not_a_positive_count(bad):
    with pytest.raises(ValueError, match="positive int"):
        env.repetitions(bad)


@pytest.mark.parametrize("bad", [-1, 2.5, "10", None, True])
def test_sample_size_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        env.sample_size(bad)
