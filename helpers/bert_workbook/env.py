"""The notebook environment: hub access, device choice, seeding, versions, Colab detection."""

from __future__ import annotations

import os
import platform
import random

MODEL_ENV_VAR = "BERT_WORKBOOK_MODEL"
"""The one setting that switches the course from its embedded assets to Hugging Face Hub models.

Unset, empty or ``embedded``: the offline default. Any other value is a hub model id, e.g.
``bert-base-uncased``. See :mod:`bert_workbook.assets`.
"""

EMBEDDED = "embedded"

CACHE_ENV_VAR = "BERT_WORKBOOK_CACHE_DIR"
"""A folder where frozen-encoder computations (sentence features, cached hidden states) are kept
on disk, keyed by the encoder's weights and the token ids, so that a restarted kernel, or another
notebook that encodes the same sentences with the same weights, reads them instead of recomputing.
Unset by default; the test suite sets it so the solution and exercise copies of a notebook share
their frozen work."""

SMOKE_ENV_VAR = "BERT_WORKBOOK_SMOKE"
"""Set to 1 by the test suite when it runs the exercise copies in ``notebooks/``: every training
loop stops after ``SMOKE_STEPS`` steps. That run proves the notebooks execute; the numbers they
teach are checked on ``solutions/``, which run in full. Learners never need it."""

SMOKE_STEPS = 2
_smoke_warned = False


def selected_model_name() -> str:
    """The model named by ``BERT_WORKBOOK_MODEL``, or ``"embedded"`` when it is unset."""
    value = os.environ.get(MODEL_ENV_VAR, "").strip()
    return value or EMBEDDED


def offline_flag_set() -> bool:
    """Whether the environment variable ``HF_HUB_OFFLINE`` asks for offline mode."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in {"1", "true", "yes", "on"}


def configure_hub_access() -> bool:
    """Set ``HF_HUB_OFFLINE=1`` unless a hub model is selected; return True when offline.

    The Hugging Face libraries read this variable when they are imported, so this runs when
    ``bert_workbook`` is imported, before transformers. A value the user set is respected.
    """
    if selected_model_name() == EMBEDDED:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return offline_flag_set()


def cache_dir():
    """The on-disk cache folder named by ``BERT_WORKBOOK_CACHE_DIR`` (a ``Path``), or None."""
    from pathlib import Path

    value = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(value) if value else None


def smoke_test() -> bool:
    """Whether ``BERT_WORKBOOK_SMOKE`` asks for a smoke test (training cut to a few steps)."""
    return os.environ.get(SMOKE_ENV_VAR, "0").strip().lower() in {"1", "true", "yes", "on"}


def timing_repeats(repeats: int) -> int:
    """``repeats`` timed runs, or one in a smoke test (its timings are not read)."""
    return 1 if smoke_test() else repeats


SMOKE_SAMPLE = 100
"""How many examples an evaluation keeps in a smoke test (see :func:`sample_size`)."""


def sample_size(n: int) -> int:
    """``n``, or at most ``SMOKE_SAMPLE`` in a smoke test.

    Notebooks wrap the size of each held-out set in it: a learner always gets ``n``; the test
    suite's smoke run, which only proves that every cell runs (its numbers are not read),
    evaluates a handful of examples instead of thousands.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return min(n, SMOKE_SAMPLE) if smoke_test() else n


SMOKE_REPETITIONS = 2
"""How many seeds or draws a repeated measurement keeps in a smoke test (see :func:`repetitions`)."""


def repetitions(n: int) -> range:
    """The draws or seeds of a repeated measurement: ``range(n)``, or the first
    ``SMOKE_REPETITIONS`` of them in a smoke test.

    Two are enough for the smoke run, whose numbers are not read, to exercise every line of a
    paired comparison (a difference, its interval, a spread); a learner always gets all ``n``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return range(min(n, SMOKE_REPETITIONS) if smoke_test() else n)


def timing_shape(batch_size: int, seq_len: int) -> tuple[int, int]:
    """``(batch_size, seq_len)``, or the smallest shape worth running, ``(1, min(seq_len, 16))``,
    in a smoke test (whose timings are not read)."""
    return (1, min(seq_len, 16)) if smoke_test() else (batch_size, seq_len)


def training_steps(steps: int) -> int:
    """``steps``, or at most ``SMOKE_STEPS`` in a smoke test (with a warning saying so)."""
    global _smoke_warned
    if not smoke_test() or steps <= SMOKE_STEPS:
        return steps
    if not _smoke_warned:
        import warnings

        _smoke_warned = True
        warnings.warn(f"{SMOKE_ENV_VAR} is set: training stops after {SMOKE_STEPS} of {steps} steps, "
                      f"so the results below mean nothing (unset it to train for real)", stacklevel=3)
    return SMOKE_STEPS


def pick_device(allow_mps: bool = False) -> str:
    """Return ``"cuda"`` when a CUDA GPU is present, else ``"cpu"``; ``"mps"`` only if asked."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if allow_mps and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and CUDA)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def version_report() -> dict[str, str]:
    """Versions of Python and the course's main libraries, plus the device and model setting."""
    from importlib.metadata import PackageNotFoundError, version

    report = {"python": platform.python_version()}
    for package in ("torch", "transformers", "tokenizers", "datasets", "bert-workbook"):
        try:
            report[package] = version(package)
        except PackageNotFoundError:
            report[package] = "not installed"
    report["device"] = pick_device()
    report["model"] = selected_model_name()
    report["hub"] = "offline" if offline_flag_set() else "online allowed"
    return report


def format_report(report: dict[str, str]) -> str:
    """Lay a ``version_report()`` out as aligned ``name: value`` lines."""
    width = max(len(k) for k in report)
    return "\n".join(f"{k:<{width}} : {v}" for k, v in report.items())


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the operating system (glibc only), so
    that a notebook's resident memory falls after a big model or batch is deleted (Binder
    enforces 2 GB on resident memory, not on what Python still uses)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing more to do
        pass
