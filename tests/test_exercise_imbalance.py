"""Notebook 05's checks: each usual mistake, written out here on its own, gets its own name (and no
other mistake's); right answers written in other ways pass. The oversampling check's classes are
sized so that scikit-learn's resample recipe visibly loses examples; macro-F1's first matrix makes
every named wrong formula give its own number."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_score
from sklearn.utils import resample

from bert_workbook.exercises import ex05

# --- oversampling ---------------------------------------------------------------------------------


def resample_recipe(labels, seed):
    """scikit-learn's recipe: keep the largest class, redraw every other class anew, with replacement."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    rows = []
    for label, count in zip(classes, counts):
        members = np.flatnonzero(labels == label)
        rows.append(members if count == counts.max() else
                    resample(members, replace=True, n_samples=counts.max(), random_state=seed))
    return np.concatenate(rows)


def undersample(labels, seed):
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    smallest = np.bincount(labels).min()
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), smallest, replace=False) for c in np.unique(labels)])


def drops_the_first_example(labels, seed):
    return ex05.oversample.reference(labels, seed)[1:]


def only_every_index(labels, seed):
    return np.arange(len(labels))


def global_randomness(labels, seed):
    labels = np.asarray(labels)
    largest = np.bincount(labels).max()
    extra = [np.random.choice(np.flatnonzero(labels == c), largest - (labels == c).sum()) for c in np.unique(labels)]
    return np.concatenate([np.arange(len(labels)), *extra])


def first_examples_again(labels, seed):
    labels = np.asarray(labels)
    largest = np.bincount(labels).max()
    extra = [np.flatnonzero(labels == c)[: largest - (labels == c).sum()] for c in np.unique(labels)]
    return np.concatenate([np.arange(len(labels)), *extra])


def one_favourite_per_class(labels, seed):
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    largest = np.bincount(labels).max()
    extra = []
    for c in np.unique(labels):
        members, missing = np.flatnonzero(labels == c), largest - (labels == c).sum()
        picks = rng.choice(members, missing)
        picks[: missing // 2] = members[0]  # half the duplicates copy one example
        extra.append(picks)
    return np.concatenate([np.arange(len(labels)), *extra])


def boolean_mask(labels, seed):
    return np.ones(len(labels), dtype=bool)


OVERSAMPLE_MISTAKES = {
    resample_recipe: "drawn anew with replacement (as sklearn.utils.resample does)",
    undersample: "that is undersampling",
    drops_the_first_example: "oversampling keeps every original example once",
    only_every_index: "class counts after oversampling",
    global_randomness: "the same seed gave different indices",
    first_examples_again: "a different seed gave the same duplicates",
    one_favourite_per_class: "copied far more often than the others",
    boolean_mask: "1-d array of integer indices",
}


@pytest.mark.parametrize("mistake", OVERSAMPLE_MISTAKES, ids=lambda f: f.__name__)
def test_oversample_names_each_mistake_and_only_it(mistake):
    result = ex05.oversample.check(mistake)
    assert not result.passed
    assert OVERSAMPLE_MISTAKES[mistake] in result.message, result
    others = [words for other, words in OVERSAMPLE_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def test_the_resample_recipe_visibly_loses_examples_on_the_checks_classes():
    labels = ex05._oversample_labels()
    lost = [len(labels) - len(np.unique(resample_recipe(labels, seed))) for seed in range(50)]
    assert min(lost) >= 60, lost  # about 120 on average; never a lucky draw that keeps everything


def as_python_list(labels, seed):
    """Right, written another way: per-class draws with Generator.integers, a list of ints."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rows = list(range(len(labels)))
    largest = np.bincount(labels).max()
    for c in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == c)
        rows += members[rng.integers(0, len(members), largest - len(members))].tolist()
    return rows


def as_tensor(labels, seed):
    return torch.as_tensor(ex05.oversample.reference(list(labels), seed))


@pytest.mark.parametrize("answer", [ex05.oversample.reference, as_python_list, as_tensor])
def test_oversample_passes_right_answers_written_differently(answer):
    result = ex05.oversample.check(answer)
    assert result.passed, result


# --- macro-F1 from a confusion matrix ---------------------------------------------------------------


def _per_class(m):
    m = np.asarray(m, dtype=float)
    tp = np.diag(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        return tp, np.nan_to_num(tp / m.sum(0)), np.nan_to_num(tp / m.sum(1)), np.nan_to_num(2 * tp / (m.sum(0) + m.sum(1)))


def accuracy(m):
    return np.trace(m) / np.sum(m)


def balanced_accuracy(m):
    return float(_per_class(m)[2].mean())


def mean_precision(m):
    return float(_per_class(m)[1].mean())


def weighted_f1(m):
    return float((_per_class(m)[3] * np.sum(m, 1)).sum() / np.sum(m))


def last_class_f1(m):
    return float(_per_class(m)[3][-1])


def arithmetic_mean_of_p_and_r(m):
    _, precision, recall, _ = _per_class(m)
    return float(((precision + recall) / 2).mean())


def f1_of_the_means(m):
    _, precision, recall, _ = _per_class(m)
    p, r = precision.mean(), recall.mean()
    return 2 * p * r / (p + r)


def sum_of_f1(m):
    return float(_per_class(m)[3].sum())


def nan_for_a_class_never_predicted(m):
    m = np.asarray(m, dtype=float)
    tp = np.diag(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = tp / m.sum(0), tp / m.sum(1)
    return float((2 * precision * recall / (precision + recall)).mean())


def one_f1_per_class(m):
    return _per_class(m)[3]


MACRO_F1_MISTAKES = {
    accuracy: "that is the accuracy",
    balanced_accuracy: "that is the balanced accuracy",
    mean_precision: "that is the mean precision",
    weighted_f1: "weighted by each class's support",
    last_class_f1: "the F1 of the last class only",
    arithmetic_mean_of_p_and_r: "the mean of precision and recall",
    f1_of_the_means: "the harmonic mean of the mean precision and the mean recall",
    sum_of_f1: "the sum of the per-class F1 scores",
    nan_for_a_class_never_predicted: "returned NaN",
    one_f1_per_class: "one F1 per class?",
}


@pytest.mark.parametrize("mistake", MACRO_F1_MISTAKES, ids=lambda f: f.__name__)
def test_macro_f1_names_each_mistake_and_only_it(mistake):
    result = ex05.macro_f1.check(mistake)
    assert not result.passed
    assert MACRO_F1_MISTAKES[mistake] in result.message, result
    others = [words for other, words in MACRO_F1_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def test_the_first_matrix_gives_each_wrong_formula_its_own_number():
    _, matrix = ex05._macro_f1_cases()[0]
    y_true = np.repeat(np.repeat(np.arange(3), 3), matrix.ravel())
    y_pred = np.repeat(np.tile(np.arange(3), 3), matrix.ravel())
    numbers = {
        "macro-F1": f1_score(y_true, y_pred, average="macro"),
        "accuracy and micro-F1": accuracy_score(y_true, y_pred),
        "balanced accuracy": balanced_accuracy_score(y_true, y_pred),
        "mean precision": precision_score(y_true, y_pred, average="macro"),
        "weighted F1": f1_score(y_true, y_pred, average="weighted"),
        "last class": f1_score(y_true, y_pred, average=None)[-1],
        **{f.__name__: f(matrix) for f in (arithmetic_mean_of_p_and_r, f1_of_the_means, sum_of_f1)},
    }
    assert f1_score(y_true, y_pred, average="micro") == pytest.approx(numbers["accuracy and micro-F1"])
    for (a, x), (b, y) in itertools.combinations(numbers.items(), 2):
        assert abs(x - y) > 1e-3, (a, b)


def from_scikit_learn(m):
    m = np.asarray(m)
    k = len(m)
    y_true = np.repeat(np.repeat(np.arange(k), k), m.ravel())
    y_pred = np.repeat(np.tile(np.arange(k), k), m.ravel())
    return f1_score(y_true, y_pred, average="macro", labels=list(range(k)), zero_division=0)


def in_torch_float32(m):
    m = torch.as_tensor(np.asarray(m), dtype=torch.float32)
    tp = m.diagonal()
    return (2 * tp / (m.sum(0) + m.sum(1)).clamp_min(1e-12)).mean()


@pytest.mark.parametrize("answer", [ex05.macro_f1_from_confusion, from_scikit_learn, in_torch_float32])
def test_macro_f1_passes_right_answers_written_differently(answer):
    result = ex05.macro_f1.check(answer)
    assert result.passed, result
