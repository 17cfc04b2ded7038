"""Notebook 05's exercise: random oversampling of the minority classes."""

from __future__ import annotations

import math

from bert_workbook import imbalance as _imbalance
from bert_workbook.exercise import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    call_or_verdict,
)


def check_oversample(fn) -> CheckResult:
    """``fn(labels, seed)`` must return indices that keep every example once, add random
    duplicates (drawn within each class, seeded) until every class is as large as the largest,
    and give the same answer for the same seed."""
    import numpy as np

    exercise = "Exercise (oversample_minority)"
    hint = ("start from every index once (np.arange(len(labels))); for each class, draw "
            "(largest count - its count) extra indices of that class with replacement, from "
            "np.random.default_rng(seed); return them all concatenated.")
    rng = np.random.default_rng(HELD_OUT_SEED)
    labels = rng.permutation(np.repeat([0, 1, 2], [300, 12, 45]))
    out, failed = call_or_verdict(exercise, fn, labels, 7)
    if failed is not None:
        return failed
    try:
        rows = np.asarray(out)
        assert rows.ndim == 1 and np.issubdtype(rows.dtype, np.integer)
    except (AssertionError, TypeError, ValueError):
        return CheckResult(exercise, False, f"expected a 1-d array of integer indices, got {type(out).__name__}"
                           f"{' of shape ' + str(getattr(out, 'shape', '')) if hasattr(out, 'shape') else ''}.", hint)
    if rows.size == 0:
        return CheckResult(exercise, False, "your function returned no indices at all.", hint)
    if rows.min() < 0 or rows.max() >= len(labels):
        return CheckResult(exercise, False, "some indices point outside the dataset.", hint)
    lost = len(labels) - len(np.unique(rows))
    if lost:
        return CheckResult(exercise, False, f"{lost} of the {len(labels)} examples are missing from "
                           "your indices: oversampling must keep every original example (drawing the "
                           "whole minority class with replacement drops some of them).", hint)
    counts = np.bincount(labels[rows], minlength=3).tolist()
    if counts != [300, 300, 300]:
        return CheckResult(exercise, False, f"class counts after oversampling are {counts}; every class "
                           "should reach the largest count, 300.", hint)
    again, failed = call_or_verdict(exercise, fn, labels, 7)
    if failed is not None or not np.array_equal(np.asarray(again), rows):
        return CheckResult(exercise, False, "the same seed gave different indices: draw from "
                           "np.random.default_rng(seed), not from global randomness.", hint)
    other, failed = call_or_verdict(exercise, fn, labels, 8)
    if failed is not None or np.array_equal(np.sort(np.asarray(other)), np.sort(rows)):
        return CheckResult(exercise, False, "a different seed gave the same duplicates: the extra "
                           "examples should be drawn at random.", hint)
    copies = np.bincount(rows, minlength=len(labels))
    for label in (1, 2):  # each minority class: its examples copied about equally often
        extra = copies[labels == label] - 1  # duplicates of each example of the class
        expected_each = extra.sum() / len(extra)
        if extra.max() > expected_each + 6 * math.sqrt(expected_each) + 3:
            return CheckResult(exercise, False, f"in class {label} a few examples are copied far more often "
                               "than the others: draw the duplicates uniformly within each class.", hint)
    return CheckResult(exercise, True, f"every example kept, classes balanced to {counts}, seeded.")


oversample = Exercise(
    name="Exercise (oversample_minority)",
    checker=check_oversample,
    hints=(
        "Oversampling never drops an example: start from every index once.",
        "For each class, draw (largest class count - its count) extra indices of that class, with "
        "replacement, uniformly, from np.random.default_rng(seed).",
        "rows = [np.arange(len(labels))]; for each class c: rows.append(rng.choice(np.flatnonzero("
        "labels == c), size=largest - count_c, replace=True)); return np.concatenate(rows).",
    ),
    reference=_imbalance.oversample_minority,
)
