"""Small, honest timers: best of several runs, reported as seconds or items per second."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence, Sized


def fastest_seconds(fn: Callable[[], object], repeats: int = 3, *, warmup: int = 0,
                    cuda: bool = False) -> float:
    """Seconds taken by the fastest of ``repeats`` calls of ``fn()``, after ``warmup`` untimed calls.

    The fastest run is the least disturbed by other work on the machine, so it is the fairest
    figure to compare two implementations by. ``cuda=True`` waits for the GPU's queued work before
    and after each call, so the time covers the work and not only its launch. (Each call of
    ``torch.utils.benchmark.Timer.timeit`` runs two hidden warm-up calls first: three runs for
    one timing, which is why the course times with this instead.)
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function to time (called with no arguments, e.g. lambda: model(x)), "
                        f"got {type(fn).__name__}")
    for name, value in {"repeats": repeats, "warmup": warmup}.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name == "repeats" else 0):
            raise ValueError(f"{name} must be an int >= {1 if name == 'repeats' else 0}, got {value!r}")
    if cuda:
        import torch

        synchronize = torch.cuda.synchronize
    else:
        def synchronize() -> None:
            return None
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def items_per_second(fn: Callable[[Sequence], object], items: Sequence, repeats: int = 3) -> float:
    """Throughput of ``fn(items)`` in items per second, from the fastest of ``repeats`` runs
    (:func:`fastest_seconds`)."""
    if not callable(fn):
        raise TypeError(f"fn must be a function of the items, got {type(fn).__name__}: the order is (fn, items)")
    if not isinstance(items, Sized):
        raise TypeError(f"items must be a sequence with a length (e.g. a list), got {type(items).__name__}")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if len(items) == 0:
        raise ValueError("items is empty: nothing to time")
    return len(items) / max(fastest_seconds(lambda: fn(items), repeats), 1e-9)
