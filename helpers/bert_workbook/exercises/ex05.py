"""Notebook 05's exercises: random oversampling of the minority classes, and macro-F1 from a confusion matrix."""

from __future__ import annotations

import math

from bert_workbook import imbalance as _imbalance
from bert_workbook.exercises.core import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    as_number,
    call_or_verdict,
    named_mistake,
    nudge,
)

OVERSAMPLE_NAME = "Exercise (oversample_minority)"
HINT_OVERSAMPLE = nudge("ex05.oversample")
# 300, 200 and 250 examples: redrawing a class of 200 or 250 with replacement up to 300 loses
# about 45 and 75 of its examples, so scikit-learn's resample recipe cannot pass by chance
OVERSAMPLE_COUNTS = (300, 200, 250)


def _oversample_labels():
    import numpy as np

    rng = np.random.default_rng(HELD_OUT_SEED)
    return rng.permutation(np.repeat(np.arange(len(OVERSAMPLE_COUNTS)), OVERSAMPLE_COUNTS))


def _as_indices(out):
    """``out`` as a 1-d integer numpy array, or None."""
    import numpy as np

    try:
        rows = np.asarray(out)
    except Exception:  # anything numpy cannot read
        return None
    return rows if rows.ndim == 1 and np.issubdtype(rows.dtype, np.integer) else None


def _lost_examples_problem(labels, rows, counts) -> str | None:
    """Which mistake lost examples, when ``rows`` leaves some out, or None."""
    import numpy as np

    lost = len(labels) - len(np.unique(rows))
    if not lost:
        return None
    missing = f"{lost} of the {len(labels)} examples are missing from your indices"
    largest, smallest = max(OVERSAMPLE_COUNTS), min(OVERSAMPLE_COUNTS)
    if counts == [largest] * len(counts):
        return (f"{missing}: each class was drawn anew with replacement (as sklearn.utils.resample does), "
                "which drops examples; oversampling keeps every example once and adds only the extra draws")
    if counts == [smallest] * len(counts):
        return (f"{missing}: that is undersampling (every class cut to the smallest); oversampling keeps "
                "every example and adds duplicates")
    return f"{missing}: oversampling keeps every original example once"


def check_oversample(fn) -> CheckResult:
    """``fn(labels, seed)`` must return indices that keep every example once, add random
    duplicates (drawn within each class, seeded) until every class is as large as the largest,
    and give the same answer for the same seed; a failure names the mistake."""
    import numpy as np

    labels = _oversample_labels()
    out, failed = call_or_verdict(OVERSAMPLE_NAME, fn, labels, 7)
    if failed is not None:
        return failed
    rows = _as_indices(out)
    if rows is None:
        shape = f" of shape {tuple(out.shape)} and dtype {out.dtype}" if hasattr(out, "shape") and hasattr(out, "dtype") else ""
        return CheckResult(OVERSAMPLE_NAME, False, f"expected a 1-d array of integer indices, got "
                           f"{type(out).__name__}{shape}.", HINT_OVERSAMPLE)
    if rows.size == 0:
        return CheckResult(OVERSAMPLE_NAME, False, "your function returned no indices at all.", HINT_OVERSAMPLE)
    if rows.min() < 0 or rows.max() >= len(labels):
        return CheckResult(OVERSAMPLE_NAME, False, "some indices point outside the dataset.", HINT_OVERSAMPLE)
    counts = np.bincount(labels[rows], minlength=len(OVERSAMPLE_COUNTS)).tolist()
    lost = _lost_examples_problem(labels, rows, counts)
    if lost:
        return CheckResult(OVERSAMPLE_NAME, False, lost + ".", HINT_OVERSAMPLE)
    largest = max(OVERSAMPLE_COUNTS)
    if counts != [largest] * len(counts):
        return CheckResult(OVERSAMPLE_NAME, False, f"class counts after oversampling are {counts}; every class "
                           f"should reach the largest count, {largest}.", HINT_OVERSAMPLE)
    again, failed = call_or_verdict(OVERSAMPLE_NAME, fn, labels, 7)
    if failed is not None:
        return failed
    if not np.array_equal(np.asarray(again), rows):
        return CheckResult(OVERSAMPLE_NAME, False, "the same seed gave different indices: draw from "
                           "np.random.default_rng(seed), not from global randomness.", HINT_OVERSAMPLE)
    other, failed = call_or_verdict(OVERSAMPLE_NAME, fn, labels, 8)
    if failed is not None:
        return failed
    other = _as_indices(other)
    if other is not None and np.array_equal(np.sort(other), np.sort(rows)):
        return CheckResult(OVERSAMPLE_NAME, False, "a different seed gave the same duplicates: the extra "
                           "examples should be drawn at random, from np.random.default_rng(seed).", HINT_OVERSAMPLE)
    copies = np.bincount(rows, minlength=len(labels))
    for label in range(1, len(OVERSAMPLE_COUNTS)):  # each minority class: its examples copied about equally often
        extra = copies[labels == label] - 1  # duplicates of each example of the class
        expected_each = extra.sum() / len(extra)
        if extra.max() > expected_each + 6 * math.sqrt(expected_each) + 3:
            return CheckResult(OVERSAMPLE_NAME, False, f"in class {label} a few examples are copied far more "
                               "often than the others: draw the duplicates uniformly within each class.", HINT_OVERSAMPLE)
    return CheckResult(OVERSAMPLE_NAME, True, f"every example kept, classes balanced to {counts}, seeded.")


oversample = Exercise(
    name=OVERSAMPLE_NAME,
    checker=check_oversample,
    hints=(
        "Oversampling never drops an example: start from every index once.",
        "For each class, draw (largest class count - its count) extra indices of that class, with "
        "replacement, uniformly, from np.random.default_rng(seed).",
        "rows = [np.arange(len(labels))]; for each class c: rows.append(rng.choice(np.flatnonzero("
        "labels == c), size=largest - count_c, replace=True)); return np.concatenate(rows).",
    ),
    reference=_imbalance.oversample_minority,
    solution_code='''
def oversample_minority(labels, seed):
    """Indices: every example once, then random duplicates until all classes are equal."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    extra = [rng.choice(np.flatnonzero(labels == c), size=counts.max() - n, replace=True)
             for c, n in zip(classes, counts)]
    return np.concatenate([np.arange(len(labels)), *extra])
''',
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
HINT_MACRO_F1 = nudge("ex05.macro_f1")


def _macro_f1_cases():
    """Confusion matrices. The first tells every named mistake apart (each gives its own number);
    then the collapse of section 2, a healthy model, a class never predicted, four classes."""
    import numpy as np

    rng = np.random.default_rng(HELD_OUT_SEED)
    return [
        ("three classes, the last one often missed", np.array([[70, 12, 0], [24, 33, 0], [25, 29, 11]])),
        ("one label for everything (2 classes)", np.array([[426, 0], [426, 0]])),
        ("a healthy binary model", np.array([[350, 76], [61, 365]])),
        ("three classes, one never predicted", np.array([[50, 10, 0], [5, 40, 0], [7, 8, 0]])),
        ("four unbalanced classes", rng.integers(0, 60, size=(4, 4)) + np.diag([200, 30, 90, 5])),
    ]


def _macro_f1_mistakes(matrix) -> dict:
    """What the usual wrong answers compute for ``matrix``, keyed by the verdict's words."""
    import numpy as np

    m = matrix.astype(np.float64)
    tp, predicted, true = np.diag(m), m.sum(0), m.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = np.nan_to_num(tp / predicted), np.nan_to_num(tp / true)
        f1 = np.nan_to_num(2 * tp / (predicted + true))
        harmonic = np.nan_to_num(2 * precision.mean() * recall.mean() / (precision.mean() + recall.mean()))
    return {
        "that is the accuracy (micro-F1 gives the same number): macro-F1 averages the per-class F1 scores":
            tp.sum() / m.sum(),
        "that is the balanced accuracy, the mean recall: macro-F1 averages the per-class F1 scores":
            recall.mean(),
        "that is the mean precision: macro-F1 averages the per-class F1 scores": precision.mean(),
        "that is the F1 weighted by each class's support; macro-F1 gives every class the same weight":
            (f1 * true).sum() / true.sum(),
        "that is the F1 of the last class only; macro-F1 is the mean over every class": f1[-1],
        "that is the mean of precision and recall; F1 is their harmonic mean, 2PR / (P + R)":
            ((precision + recall) / 2).mean(),
        "that is the harmonic mean of the mean precision and the mean recall; macro-F1 is the mean of "
        "the per-class F1 scores": harmonic,
        "that is the sum of the per-class F1 scores; macro-F1 is their mean": f1.sum(),
    }


def _same_number(a, b) -> bool:
    return math.isclose(a, float(b), rel_tol=1e-6, abs_tol=1e-7)  # float32 answers too


def check_macro_f1(fn) -> CheckResult:
    """``fn(confusion)`` must equal :func:`macro_f1_from_confusion` (and scikit-learn's macro
    F1) as one number on every case of ``_macro_f1_cases``; it names the usual slips."""
    import numpy as np

    lines = []
    for what, matrix in _macro_f1_cases():
        expected = macro_f1_from_confusion(matrix)
        out, failed = call_or_verdict(MACRO_F1_NAME, fn, matrix)
        if failed is not None:
            return failed
        got = as_number(out)
        if got is None:
            per_class = getattr(out, "shape", None) == (len(matrix),) or (
                isinstance(out, (list, tuple)) and len(out) == len(matrix))
            return CheckResult(MACRO_F1_NAME, False, f"{what}: expected one number, got {type(out).__name__}"
                               + (f" of {len(matrix)} values: one F1 per class? Macro-F1 is their mean."
                                  if per_class else "."), HINT_MACRO_F1)
        if math.isnan(got):
            return CheckResult(MACRO_F1_NAME, False, f"{what}: your function returned NaN: a class that is never "
                               "predicted has precision 0 / 0; its F1 counts as 0.", HINT_MACRO_F1)
        if _same_number(got, expected):
            lines.append(f"{what}: {got:.4f}")
            continue
        mistake = named_mistake(got, _macro_f1_mistakes(np.asarray(matrix)), _same_number)
        return CheckResult(MACRO_F1_NAME, False, f"{what}: got {got:.4f}, expected {expected:.4f}"
                           + (f": {mistake}." if mistake else "."), HINT_MACRO_F1)
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
    solution_code='''
def macro_f1_from_confusion(confusion):
    """Macro-F1 from a confusion matrix (rows: true class, columns: predicted class)."""
    m = np.asarray(confusion, dtype=float)
    tp = np.diag(m)
    fp, fn = m.sum(0) - tp, m.sum(1) - tp
    denominator = 2 * tp + fp + fn
    return float(np.mean(np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)))
''',
)
