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


def macro_f1_from_confusion(confusion) -> float:
    """Macro-F1 from a confusion matrix (rows: true class, columns: predicted class): each
    class's F1 = 2 TP / (2 TP + FP + FN), then the plain mean over the classes, so a rare class
    counts as much as a common one. A class that is neither true nor predicted anywhere has no
    F1; it counts as 0, as scikit-learn's ``zero_division=0`` does."""
    import numpy as np

    matrix = np.asarray(confusion, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"expected a square confusion matrix of 2 or more classes, got shape {matrix.shape}")
    tp = np.diag(matrix)
    fp = matrix.sum(0) - tp  # predicted as the class, truly another
    fn = matrix.sum(1) - tp  # truly the class, predicted as another
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1.mean())


MACRO_F1_NAME = "Exercise (macro_f1_from_confusion)"


def _macro_f1_cases():
    """Confusion matrices: the collapse of section 2, a healthy model, three and four classes, a
    class that is never predicted."""
    import numpy as np

    rng = np.random.default_rng(HELD_OUT_SEED)
    return [
        ("one label for everything (2 classes)", np.array([[426, 0], [426, 0]])),
        ("a healthy binary model", np.array([[350, 76], [61, 365]])),
        ("three classes, one never predicted", np.array([[50, 10, 0], [5, 40, 0], [7, 8, 0]])),
        ("four unbalanced classes", rng.integers(0, 60, size=(4, 4)) + np.diag([200, 30, 90, 5])),
    ]


def _macro_f1_mistakes(matrix) -> dict:
    """What the usual wrong answers compute for ``matrix``."""
    import numpy as np

    m = matrix.astype(np.float64)
    tp, predicted, true = np.diag(m), m.sum(0), m.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = tp / predicted, tp / true
        f1 = np.nan_to_num(2 * tp / (2 * tp + (predicted - tp) + (true - tp)))
    return {
        "that is the accuracy (micro-F1): macro-F1 averages the per-class F1 scores": tp.sum() / m.sum(),
        "that is the F1 weighted by each class's support; macro-F1 gives every class the same weight":
            float((f1 * true).sum() / true.sum()),
        "that is the F1 of the last class only; macro-F1 is the mean over every class": f1[-1],
        "that is the mean of precision and recall; F1 is their harmonic mean, 2PR / (P + R)":
            float(np.nan_to_num((precision + recall) / 2).mean()),
    }


def check_macro_f1(fn) -> CheckResult:
    """``fn(confusion)`` must equal :func:`macro_f1_from_confusion` (and scikit-learn's macro
    F1) on every case of ``_macro_f1_cases``; it names the usual slips."""

    hint = "call ex05.macro_f1.hint() for a nudge, again for more."
    lines = []
    for what, matrix in _macro_f1_cases():
        expected = macro_f1_from_confusion(matrix)
        out, failed = call_or_verdict(MACRO_F1_NAME, fn, matrix.copy())
        if failed is not None:
            return failed
        try:
            got = float(out.item() if hasattr(out, "item") else out)
        except Exception:  # not a number
            return CheckResult(MACRO_F1_NAME, False, f"{what}: expected a number, got {type(out).__name__}.", hint)
        if math.isnan(got):
            return CheckResult(MACRO_F1_NAME, False, f"{what}: your function returned NaN. A class that is never "
                               "predicted has precision 0 / 0.", "count that class's F1 as 0, or compute "
                               "F1 = 2 TP / (2 TP + FP + FN), which does not divide by zero there.")
        if math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-7):  # float32 answers too
            lines.append(f"{what}: {got:.4f}")
            continue
        for mistake, value in _macro_f1_mistakes(matrix).items():
            if math.isclose(got, float(value), rel_tol=1e-6, abs_tol=1e-7):
                return CheckResult(MACRO_F1_NAME, False, f"{what}: got {got:.4f}, expected {expected:.4f}: "
                                   f"{mistake}.", hint)
        return CheckResult(MACRO_F1_NAME, False, f"{what}: got {got:.4f}, expected {expected:.4f}.", hint)
    return CheckResult(MACRO_F1_NAME, True, "equal to the reference (and to scikit-learn's macro F1) on:\n  "
                       + "\n  ".join(lines))


macro_f1 = Exercise(
    name=MACRO_F1_NAME,
    checker=check_macro_f1,
    hints=(
        "Rows are the true class, columns the predicted one. For class c: TP is the diagonal entry, "
        "FP the rest of column c, FN the rest of row c.",
        "F1 of class c = 2 TP / (2 TP + FP + FN) (the harmonic mean of precision and recall), 0 "
        "when that denominator is 0.",
        "Macro-F1 is the plain mean of the per-class F1 scores: every class weighs the same, "
        "however rare. With numpy: tp = np.diag(m); fp = m.sum(0) - tp; fn = m.sum(1) - tp.",
    ),
    reference=macro_f1_from_confusion,
)
