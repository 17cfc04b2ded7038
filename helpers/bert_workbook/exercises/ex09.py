"""Notebook 09's exercise: the global batch and the schedule of a data-parallel run."""

from __future__ import annotations

from bert_workbook import finetune as _finetune
from bert_workbook.exercises.core import (
    CheckResult,
    Exercise,
    as_int,
    as_list,
    call_or_verdict,
    named_mistake,
    nudge,
)

# (examples, per-device batch, processes, accumulation, epochs): even and uneven last batches
PLAN_CASES = [(8530, 16, 1, 1, 3), (8530, 8, 2, 1, 3), (8530, 8, 2, 4, 2), (1000, 32, 8, 1, 1),
              (100, 8, 2, 2, 5), (90, 8, 2, 3, 4), (64, 16, 4, 1, 10)]
PLAN_NAME = "Exercise (plan_run)"


def _plan_mistakes(examples, per_device, processes, accumulation, epochs):
    """What the usual wrong plans give, to name the mistake in the verdict."""
    import math

    def plan(global_batch, per_epoch):
        return global_batch, per_epoch, per_epoch * epochs, int(0.1 * per_epoch * epochs)

    passes = math.ceil(math.ceil(examples / per_device) / processes)  # one process's forward passes
    return {
        "the global batch leaves out the processes: every process reads its own per-device batch, "
        "so an update sees per_device_batch x processes x accumulation examples":
            plan(per_device * accumulation, math.ceil(examples / (per_device * accumulation))),
        "the global batch leaves out gradient accumulation: each update adds up `accumulation` "
        "forward passes per process":
            plan(per_device * processes, math.ceil(examples / (per_device * processes))),
        "updates per epoch were rounded down: the last, smaller batch of an epoch is an update too "
        "(use math.ceil)":
            plan(per_device * processes * accumulation, examples // (per_device * processes * accumulation)),
        "the schedule was counted in one process's forward passes, not in optimizer updates "
        "(divide by the accumulation steps)":
            (per_device * processes * accumulation, passes, passes * epochs, int(0.1 * passes * epochs)),
    }


def check_plan_run(fn) -> CheckResult:
    """``fn(examples, per_device_batch, processes, accumulation, epochs)`` must return
    ``(global batch, updates per epoch, total updates, warm-up updates)`` for every case of
    ``PLAN_CASES``; the usual slips are named."""
    hint = nudge("ex09.plan_run")
    for case in PLAN_CASES:
        expected = _finetune.plan_run(*case)
        got, failed = call_or_verdict(PLAN_NAME, fn, *case)
        if failed is not None:
            return failed
        values = as_list(got)
        numbers = None if values is None or len(values) != 4 else [as_int(v) for v in values]
        if numbers is None or None in numbers:
            return CheckResult(PLAN_NAME, False, "expected four whole numbers (global batch, updates per "
                               f"epoch, total updates, warm-up updates), got {got!r:.80}.", hint)
        if tuple(numbers) == expected:
            continue
        where = ("examples={}, per_device_batch={}, processes={}, accumulation={}, epochs={}"
                 .format(*case))
        why = named_mistake(tuple(numbers), _plan_mistakes(*case), lambda a, b: a == tuple(b))
        return CheckResult(PLAN_NAME, False, f"{where}: expected {expected}, got {tuple(numbers)}"
                           + (f": {why}." if why else "."), hint)
    return CheckResult(PLAN_NAME, True, f"right on {len(PLAN_CASES)} runs, from 1 process to 8, with and "
                       "without accumulation, with even and uneven last batches.")


plan_run = Exercise(
    name=PLAN_NAME,
    checker=check_plan_run,
    hints=(
        "One update: every process runs `accumulation` forward passes of `per_device_batch` "
        "examples before the optimizer steps.",
        "global batch = per_device_batch x processes x accumulation; an epoch needs "
        "ceil(examples / global batch) updates, the last one smaller.",
        "total = updates per epoch x epochs; warm-up = int(0.1 x total), counted in updates, "
        "the unit the schedule steps in.",
    ),
    reference=_finetune.plan_run,
    solution_code='''
def plan_run(examples, per_device_batch, processes, accumulation, epochs):
    """(global batch, updates per epoch, total updates, warm-up updates) of a data-parallel run."""
    import math

    global_batch = per_device_batch * processes * accumulation
    per_epoch = math.ceil(examples / global_batch)  # the last, smaller batch is an update too
    total = per_epoch * epochs
    return global_batch, per_epoch, total, int(0.1 * total)
''',
)
