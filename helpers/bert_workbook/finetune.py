"""Notebook 04's fine-tune as a script on Hugging Face Accelerate: one process or many.

    python -m bert_workbook.finetune --steps 60 --output-dir run        # one process, CPU or GPU
    torchrun --nproc_per_node 2 -m bert_workbook.finetune --cpu ...     # two CPU processes (gloo)
    accelerate launch --multi_gpu --num_processes 4 -m bert_workbook.finetune ...   # four GPUs
    accelerate launch --multi_gpu --num_machines 2 --machine_rank 0 --main_process_ip HOST \\
        --main_process_port 29500 --num_processes 16 -m bert_workbook.finetune ...  # two machines

The same code runs in every setting: the ``Accelerator`` prepares the model (wrapped for
data-parallel training when there are several processes), the optimizer and the data loaders
(each process reads its own share of every global batch), and ``accelerator.backward`` averages
the gradients across processes. What the script adds:

* ``--global-batch-size`` is the number of examples per optimizer update, whatever the number of
  processes and the gradient accumulation: per-process batch = global / (processes x accumulation).
  So a run on 1 process and a run on 2 see the same examples in each update.
* The learning-rate schedule counts optimizer updates (stepped here once per update), so it is the
  same on any number of processes.
* Seeds: one seed for every process (the model starts equal everywhere); the data order depends on
  the seed and the epoch only (a seedable sampler), so it is the same on any number of processes.
* Logs and files are written by the main process only; evaluation gathers predictions from every
  process and drops the copies that padded the last uneven batch (``gather_for_metrics``).
* ``--checkpoint-every N`` saves the full training state (model, optimizer, schedule, random
  generators) every N updates; ``--resume`` continues from the newest checkpoint as if the run had
  never stopped. bf16 autocast on GPUs that support it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

LABELS = ["negative", "positive"]
FINAL_WEIGHTS = "final.safetensors"  # the trained model, written by the main process at the end
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class FinetuneConfig:
    """Everything a run depends on (the command line's options, with these defaults)."""

    model: str = "embedded"  # or a Hugging Face Hub model id (online)
    dataset: str = "rotten_tomatoes"
    train_size: int = 512
    eval_size: int = 201
    max_length: int = 64
    global_batch_size: int = 16  # examples per optimizer update, all processes together
    grad_accum: int = 1
    steps: int = 30  # optimizer updates
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    dropout: float | None = None  # None: the model's own; 0 turns it off
    checkpoint_every: int = 0  # 0: no checkpoints
    output_dir: str = "finetune-run"
    resume: bool = False
    stop_after: int = 0  # stop (as if killed) after this many updates; 0: run to the end
    cpu: bool = False  # stay on the CPU even with a GPU
    mixed_precision: str = "auto"  # "auto": bf16 where the GPU supports it, else "no"


def per_device_batch_size(global_batch_size: int, processes: int, accumulation: int) -> int:
    """Examples each process reads per forward pass, so that ``processes`` processes accumulating
    ``accumulation`` passes make one update of ``global_batch_size`` examples."""
    for name, value in (("global_batch_size", global_batch_size), ("processes", processes),
                        ("accumulation", accumulation)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if global_batch_size % (processes * accumulation):
        raise ValueError(f"global batch {global_batch_size} is not divisible by {processes} processes x "
                         f"{accumulation} accumulation steps = {processes * accumulation}: choose a "
                         f"global batch that is a multiple of {processes * accumulation}")
    return global_batch_size // (processes * accumulation)


def plan_run(examples: int, per_device_batch: int, processes: int, accumulation: int, epochs: int,
             warmup_ratio: float = 0.1) -> tuple[int, int, int, int]:
    """What a data-parallel run will do: ``(global batch, updates per epoch, total updates,
    warm-up updates)``. Every update sees ``per_device_batch`` examples on each of ``processes``
    processes, ``accumulation`` times over; the last, smaller batch of an epoch is an update too;
    the schedule counts updates, and warms up over the first ``warmup_ratio`` of them."""
    from bert_workbook.arguments import check_count, check_probability

    for name, value in (("examples", examples), ("per_device_batch", per_device_batch), ("processes", processes),
                        ("accumulation", accumulation), ("epochs", epochs)):
        check_count(value, name)
    check_probability(warmup_ratio, "warmup_ratio")
    global_batch = per_device_batch * processes * accumulation
    per_epoch = math.ceil(examples / global_batch)
    total = per_epoch * epochs
    return global_batch, per_epoch, total, int(warmup_ratio * total)


def check_config(config: FinetuneConfig) -> None:
    """Raise ``ValueError`` naming the first bad setting (before anything heavy is loaded)."""
    from bert_workbook.data import DATASETS

    if config.dataset not in ("rotten_tomatoes", "imdb"):
        raise ValueError(f"dataset must be a labelled sentence dataset of the course "
                         f"(rotten_tomatoes or imdb; the course has {', '.join(DATASETS)}), got {config.dataset!r}")
    for name in ("train_size", "eval_size", "max_length", "global_batch_size", "grad_accum", "steps"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not config.lr > 0 or not 0 <= config.warmup_ratio < 1 or config.weight_decay < 0:
        raise ValueError("lr must be > 0, warmup_ratio in [0, 1), weight_decay >= 0")
    if config.dropout is not None and not 0 <= config.dropout < 1:
        raise ValueError(f"dropout must lie in [0, 1) or be None, got {config.dropout!r}")
    if config.checkpoint_every < 0 or config.stop_after < 0:
        raise ValueError("checkpoint_every and stop_after must be >= 0")
    per_device_batch_size(config.global_batch_size, 1, config.grad_accum)  # processes: checked at launch
    if config.mixed_precision not in ("auto", "no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16, got {config.mixed_precision!r}")


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint folder with the most updates in ``output_dir``, or None."""
    folder = Path(output_dir)
    found = [(int(m[1]), p) for p in folder.glob("checkpoint-*") if (m := CHECKPOINT.match(p.name))] \
        if folder.is_dir() else []
    return max(found)[1] if found else None


def _data(config: FinetuneConfig, tokenizer) -> list[list[dict]]:
    """The training and held-out examples as lists of tokenized examples: the same sentences,
    in the same order, as ``load_course_dataset(...).shuffle(seed).select(range(size))`` gives,
    read without the ``datasets`` library (each process saves the 0.13 GB its import costs)."""
    import numpy as np

    from bert_workbook.data import load_review_split

    train, held_out = load_review_split(config.dataset, "train"), load_review_split(config.dataset, "validation")
    parts = []
    for name, (texts, labels), size in (("train_size", train, config.train_size),
                                        ("eval_size", held_out, config.eval_size)):
        if size > len(texts):
            raise ValueError(f"{name}={size} but the {config.dataset} split has only {len(texts):,} examples")
        rows = np.random.default_rng(config.seed).permutation(len(texts))[:size]  # as Dataset.shuffle(seed)
        encoded = tokenizer([texts[i] for i in rows], truncation=True, max_length=config.max_length)
        keep = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in encoded]
        parts.append([{**{c: encoded[c][j] for c in keep}, "labels": labels[i]} for j, i in enumerate(rows)])
    return parts


def _mixed_precision(setting: str, cpu: bool) -> str:
    import torch

    if setting != "auto":
        return setting
    return "bf16" if not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def run(config: FinetuneConfig) -> dict:
    """Fine-tune (or resume) as ``config`` says; returns the main process's summary (also written
    to ``output_dir/summary.json``) and saves the final weights to ``output_dir/final.safetensors``."""
    check_config(config)
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

    from bert_workbook import assets

    accelerator = Accelerator(cpu=config.cpu, gradient_accumulation_steps=config.grad_accum,
                              mixed_precision=_mixed_precision(config.mixed_precision, config.cpu),
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
                              # with several processes, gradients live in DDP's buckets, not in a copy
                              kwargs_handlers=[DistributedDataParallelKwargs(gradient_as_bucket_view=True)])
    per_device = per_device_batch_size(config.global_batch_size, accelerator.num_processes, config.grad_accum)
    set_seed(config.seed)  # the same on every process: every copy of the model starts equal
    tokenizer = assets.load_tokenizer(config.model)
    train, held_out = _data(config, tokenizer)
    model = assets.load_classifier(LABELS, name=config.model)
    # as notebook 04: the word-embedding table stays frozen (a third of the parameters; the
    # gradient and optimizer state it would need are most of a process's training memory)
    model.get_input_embeddings().weight.requires_grad_(False)
    if config.dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = config.dropout
    collate = DataCollatorWithPadding(tokenizer)
    train_loader = DataLoader(train, batch_size=per_device, shuffle=True,
                              collate_fn=collate, generator=torch.Generator().manual_seed(config.seed))
    eval_loader = DataLoader(held_out, batch_size=64, collate_fn=collate)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if not (n.endswith("bias") or "LayerNorm" in n)]
    rest = [p for n, p in trainable if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr,
                                  fused=True)  # one kernel per step: faster, and no per-tensor temporaries
    # stepped by hand once per update (not prepared): the schedule counts updates on any process count
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * config.steps), config.steps)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)
    accelerator.register_for_checkpointing(schedule)

    output = Path(config.output_dir)
    step, losses = 0, []
    if config.resume:
        checkpoint = latest_checkpoint(output)
        if checkpoint is None:
            raise FileNotFoundError(f"--resume: no checkpoint-N folder in {output}; run once with "
                                    "--checkpoint-every first")
        accelerator.load_state(str(checkpoint))
        progress = json.loads((checkpoint / "progress.json").read_text())
        step, losses = progress["step"], progress["losses"]
        accelerator.print(f"resumed from {checkpoint.name}: update {step} of {config.steps}")
    passes_per_epoch = len(train_loader)  # forward passes of one process per epoch
    consumed = step * config.grad_accum
    epoch, skip = divmod(consumed, passes_per_epoch)
    start, window = time.perf_counter(), []
    model.train()
    while step < config.steps:
        train_loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        skip = 0
        for batch in batches:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
            window.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            schedule.step()
            step += 1
            # the update's loss over every process: one gather per update, not per forward pass
            losses.append(accelerator.gather(torch.stack(window).mean()[None]).mean().item())
            window = []
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                folder = output / f"checkpoint-{step}"
                accelerator.save_state(str(folder))
                if accelerator.is_main_process:
                    (folder / "progress.json").write_text(json.dumps({"step": step, "losses": losses}))
                accelerator.wait_for_everyone()
            if step >= config.steps or step == config.stop_after:
                break
        if step == config.stop_after and step < config.steps:
            accelerator.print(f"stopped after update {step} (--stop-after): resume with --resume")
            accelerator.end_training()
            return {"stopped_at": step}
        epoch += 1
    seconds = time.perf_counter() - start

    model.eval()
    correct, counted, plain = 0, 0, 0
    with torch.no_grad():
        for batch in eval_loader:
            predictions = model(**batch).logits.argmax(-1)
            plain += len(accelerator.gather(batch["labels"]))  # what a plain gather would count
            predictions, labels = accelerator.gather_for_metrics((predictions, batch["labels"]))
            correct += int((predictions == labels).sum())
            counted += len(labels)
    summary = {"config": asdict(config), "processes": accelerator.num_processes,
               "per_device_batch_size": per_device, "updates": step, "losses": losses,
               "eval_examples": counted, "eval_accuracy": correct / counted, "eval_gathered_plain": plain,
               "train_seconds": seconds, "distributed_type": str(accelerator.distributed_type),
               "mixed_precision": accelerator.mixed_precision}
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        weights = {name: tensor.contiguous() for name, tensor in accelerator.unwrap_model(model).state_dict().items()}
        save_file(weights, str(output / FINAL_WEIGHTS))
        (output / "summary.json").write_text(json.dumps(summary, indent=1))
        accelerator.print(f"{step} updates on {accelerator.num_processes} process(es) of {per_device} x "
                          f"{config.grad_accum}; eval accuracy {correct / counted:.3f} on {counted} examples")
    accelerator.end_training()
    return summary


def command(processes: int = 1, **options) -> list[str]:
    """The command line that runs this script on ``processes`` local processes (``torchrun``, the
    launcher ``accelerate launch`` uses too) with ``options`` as ``--name value`` flags
    (``True`` for a bare flag, ``None`` or ``False`` to leave one out)."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive int, got {processes!r}")
    known = {f.name for f in fields(FinetuneConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown options {unknown}; the script takes {sorted(known)}")
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes)] if processes > 1 else []
    flags = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flags += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return [sys.executable, *launcher, "-m", "bert_workbook.finetune", *flags]


# glibc's malloc keeps freed blocks under 32 MiB (or a dynamic threshold) in its heaps, where the
# activations of every step land in new places: 0.18 GB more per process at its peak (measured:
# 1.20 -> 1.02 GB). Blocks from 128 KiB up are mapped and unmapped instead. Other C libraries
# ignore the variable.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_environments(processes: int, threads: int, port: int) -> list[dict[str, str]]:
    """The environment of each of ``processes`` local workers: what ``torchrun`` gives them
    (rank, world size, the rendezvous address), so that they run as under it, without its own
    parent process (a Python process with torch loaded: 0.23 GB)."""
    import os

    base = {**os.environ, **WORKER_ENV, "OMP_NUM_THREADS": str(threads),
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    if processes == 1:
        return [base]
    shared = {"WORLD_SIZE": str(processes), "LOCAL_WORLD_SIZE": str(processes), "GROUP_RANK": "0",
              "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return [{**base, **shared, "RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_WORLD_SIZE": "1"}
            for rank in range(processes)]


def launch(processes: int = 1, threads: int = 1, **options) -> dict:
    """Run the script in fresh processes, as ``command(processes, ...)`` would from a terminal,
    and return its summary with ``wall_seconds`` (start-up included). ``threads``: torch threads
    per process. The workers are started directly with the environment ``torchrun`` would give
    them (:func:`worker_environments`). A failed run raises ``RuntimeError`` with the end of its
    error output.

    With ``BERT_WORKBOOK_CACHE_DIR`` set (the test suite sets it), a run already made with the
    same options, code and library versions is copied from the cache instead of run again."""
    import subprocess
    import tempfile

    args = command(1, **options)  # validates options; each worker runs the script itself
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    folder = Path(options.get("output_dir", FinetuneConfig.output_dir))
    cached = _cached_run(processes, threads, options, folder)
    if cached is not None:
        return cached
    start = time.perf_counter()
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(processes)]
    workers = [subprocess.Popen(args, env=worker_env, stdout=log, stderr=subprocess.STDOUT, text=True)
               for worker_env, log in zip(worker_environments(processes, threads, _free_port()), logs)]
    codes = [worker.wait() for worker in workers]
    wall = time.perf_counter() - start
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    if any(codes):
        failed = next(rank for rank, code in enumerate(codes) if code)
        raise RuntimeError(f"the run failed (process {failed} exited with {codes[failed]}):\n"
                           f"{outputs[failed][-2000:]}")
    if options.get("stop_after"):
        result = {"stopped_at": options["stop_after"], "wall_seconds": wall, "stdout": outputs[0]}
    else:
        result = {**json.loads((folder / "summary.json").read_text()), "wall_seconds": wall,
                  "stdout": outputs[0]}
    _store_run(processes, threads, options, folder, result)
    return result


def _run_key(processes: int, threads: int, options: dict) -> str | None:
    """The cache key of a launch, or None when it must run: no cache folder, or a resumed run
    (it depends on what earlier runs left in its folder)."""
    import hashlib

    from bert_workbook import env

    if env.cache_dir() is None or options.get("resume"):
        return None
    source = Path(__file__).resolve().parent
    code = b"".join(path.read_bytes() for path in sorted(source.glob("*.py")))
    described = {k: str(v) for k, v in sorted(options.items()) if k != "output_dir"}
    text = json.dumps([processes, threads, described, env.version_report(), env.smoke_test()], sort_keys=True)
    return hashlib.sha256(code + text.encode()).hexdigest()[:24]


def _cached_run(processes: int, threads: int, options: dict, folder: Path) -> dict | None:
    import shutil

    from bert_workbook import env

    key = _run_key(processes, threads, options)
    stored = env.cache_dir() / "finetune" / key if key else None
    if stored is None or not (stored / "result.json").exists():
        return None
    shutil.copytree(stored / "output", folder, dirs_exist_ok=True)
    result = json.loads((stored / "result.json").read_text())
    if "config" in result:
        result["config"]["output_dir"] = str(folder)
    return result


def _store_run(processes: int, threads: int, options: dict, folder: Path, result: dict) -> None:
    import shutil

    from bert_workbook import env

    key = _run_key(processes, threads, options)
    if key is None:
        return
    stored = env.cache_dir() / "finetune" / key
    shutil.rmtree(stored, ignore_errors=True)
    shutil.copytree(folder, stored / "output")
    (stored / "result.json").write_text(json.dumps(result))


def parameter_difference(folder_a: str | Path, folder_b: str | Path) -> float:
    """The largest absolute difference between the final weights of two runs' output folders,
    read one tensor at a time with NumPy (the caller needs neither torch nor both models in
    memory)."""
    import numpy as np
    from safetensors import safe_open

    paths = [Path(folder) / FINAL_WEIGHTS for folder in (folder_a, folder_b)]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: has that run finished?")
    with safe_open(str(paths[0]), framework="np") as a, safe_open(str(paths[1]), framework="np") as b:
        if set(a.keys()) != set(b.keys()):
            raise ValueError("the two runs trained different models (their parameter names differ)")
        return max(float(np.abs(a.get_tensor(k).astype(np.float64) - b.get_tensor(k).astype(np.float64)).max())
                   for k in a.keys())


def parse_args(argv: list[str] | None = None) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from command-line options (``--global-batch-size 16`` ...)."""
    parser = argparse.ArgumentParser(prog="python -m bert_workbook.finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = FinetuneConfig()
    for field in fields(FinetuneConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        elif field.name == "dropout":
            parser.add_argument(flag, type=float, default=None)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return FinetuneConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        run(config)
    except (ValueError, FileNotFoundError) as error:  # a bad setting: say which, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
