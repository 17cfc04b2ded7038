"""Small, honest timers: best of several runs, reported as items per second."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def items_per_second(fn: Callable[[Sequence], object], items: Sequence, repeats: int = 3) -> float:
    """Throughput of ``fn(items)`` in items per second, from the fastest of ``repeats`` runs.

    The fastest run is the least disturbed by other work on the machine, so it is the fairest
    figure to compare two implementations by.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if len(items) == 0:
        raise ValueError("items is empty: nothing to time")
    import torch
    from torch.utils import benchmark

    timer = benchmark.Timer("fn(items)", globals={"fn": fn, "items": items}, num_threads=torch.get_num_threads())
    best = min(timer.timeit(1).mean for _ in range(repeats))  # one call per run: the fastest run counts
    return len(items) / max(best, 1e-9)
