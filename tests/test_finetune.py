"""The Accelerate fine-tuning script (notebook 09): data parallelism, gradient accumulation and a
resumed run compute what one uninterrupted process computes; evaluation counts every example once;
bad settings get clear errors."""

import json

import pytest

from bert_workbook import finetune

pytestmark = pytest.mark.slow  # launches training processes: a minute in all

SMALL = dict(cpu=True, train_size=48, eval_size=21, max_length=32, steps=4, global_batch_size=16, dropout=0)
TOLERANCE = 1e-5  # largest parameter difference allowed between runs that compute the same thing


def launch(output, processes=1, **options):
    return finetune.launch(processes, **SMALL, output_dir=str(output), **options)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    launch(root / "one", checkpoint_every=2)
    launch(root / "two", processes=2)
    launch(root / "accumulated", grad_accum=2)
    launch(root / "resumed", checkpoint_every=2, stop_after=2)
    stopped = (root / "resumed" / finetune.FINAL_WEIGHTS).exists()
    launch(root / "resumed", checkpoint_every=2, resume=True)
    return root, stopped


def test_two_processes_reach_the_parameters_of_one(runs):
    root, _ = runs
    assert finetune.parameter_difference(root / "one", root / "two") < TOLERANCE
    summary = json.loads((root / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["per_device_batch_size"] == 8
    assert "MULTI_CPU" in summary["distributed_type"]


def test_gradient_accumulation_reaches_the_parameters_of_one_big_batch(runs):
    root, _ = runs
    assert finetune.parameter_difference(root / "one", root / "accumulated") < TOLERANCE


def test_a_stopped_run_resumes_to_the_uninterrupted_parameters(runs):
    root, stopped = runs
    assert not stopped  # stopping writes no final weights
    assert finetune.parameter_difference(root / "one", root / "resumed") == 0
    one = json.loads((root / "one" / "summary.json").read_text())
    resumed = json.loads((root / "resumed" / "summary.json").read_text())
    assert resumed["losses"] == one["losses"]


def test_evaluation_counts_each_example_once_with_an_uneven_last_batch(runs):
    root, _ = runs
    for name in ("one", "two"):  # 21 examples: two processes pad the last batch, gather drops the copies
        summary = json.loads((root / name / "summary.json").read_text())
        assert summary["eval_examples"] == 21
    assert json.loads((root / "one" / "summary.json").read_text())["eval_accuracy"] == \
        json.loads((root / "two" / "summary.json").read_text())["eval_accuracy"]


@pytest.mark.parametrize("args, says", [
    (["--global-batch-size", "10", "--grad-accum", "4"], "not divisible"),
    (["--dataset", "conll2003"], "labelled sentence dataset"),
    (["--steps", "0"], "steps must be a positive int"),
    (["--dropout", "1.5"], "dropout"),
])
def test_bad_settings_get_a_clear_error(args, says, capsys):
    assert finetune.main(args) == 2
    assert says in capsys.readouterr().err


def test_missing_data_unknown_models_and_missing_checkpoints_say_what_to_do(tmp_path):
    from bert_workbook.assets import AssetUnavailableError

    with pytest.raises(AssetUnavailableError, match="not in the local cache"):
        finetune.run(finetune.FinetuneConfig(cpu=True, model="no-such/model", output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="has only"):
        finetune.run(finetune.FinetuneConfig(cpu=True, train_size=10**7, output_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="--checkpoint-every"):
        finetune.run(finetune.FinetuneConfig(cpu=True, train_size=16, eval_size=8, steps=1, resume=True,
                                             output_dir=str(tmp_path)))


def test_batch_arithmetic():
    assert finetune.per_device_batch_size(32, 2, 2) == 8
    assert finetune.plan_run(100, 16, 1, 1, 1)[1] == 7  # the last, smaller batch is an update too
    with pytest.raises(ValueError, match="multiple of 6"):
        finetune.per_device_batch_size(16, 2, 3)
    with pytest.raises(ValueError):
        finetune.per_device_batch_size(16, 0, 1)


def test_command_lines():
    line = finetune.command(2, steps=3, cpu=True, dropout=None, resume=False)
    assert line[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
    assert line[-3:] == ["--steps", "3", "--cpu"]
    assert "torch.distributed.run" not in finetune.command(1)
    with pytest.raises(ValueError, match="unknown options"):
        finetune.command(1, stepz=3)
    with pytest.raises(RuntimeError, match="exited with 2"):
        finetune.launch(1, steps=0)
    with pytest.raises(ValueError, match="threads"):
        finetune.launch(1, threads=0)


def test_each_worker_gets_the_environment_torchrun_would_give_it():
    one = finetune.worker_environments(1, threads=2, port=29999)
    assert len(one) == 1 and "RANK" not in one[0] and one[0]["OMP_NUM_THREADS"] == "2"
    two = finetune.worker_environments(2, threads=1, port=29999)
    assert [e["RANK"] for e in two] == ["0", "1"] and [e["LOCAL_RANK"] for e in two] == ["0", "1"]
    assert {e["WORLD_SIZE"] for e in two} == {"2"} and {e["MASTER_PORT"] for e in two} == {"29999"}
    assert all(e["MALLOC_MMAP_THRESHOLD_"] == "131072" for e in two)


def test_a_run_made_before_is_copied_from_the_cache_not_run_again(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("BERT_WORKBOOK_CACHE_DIR", str(tmp_path / "cache"))
    first = finetune.launch(1, **{**SMALL, "steps": 1}, output_dir=str(tmp_path / "first"))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("ran again"))
    again = finetune.launch(1, **{**SMALL, "steps": 1}, output_dir=str(tmp_path / "again"))
    assert again["losses"] == first["losses"] and (tmp_path / "again" / finetune.FINAL_WEIGHTS).exists()
    assert again["config"]["output_dir"] == str(tmp_path / "again")
    assert finetune.parameter_difference(tmp_path / "first", tmp_path / "again") == 0
    assert finetune._run_key(1, 1, {"resume": True}) is None  # a resumed run always runs
