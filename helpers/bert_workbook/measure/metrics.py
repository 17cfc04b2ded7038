"""How one set of logits is judged: AUC and macro-F1, decisions at a threshold tuned on held-out
data, early stopping without peeking, and the same metrics under bootstrap weights (the
evaluation set's share of a comparison's variance, for ``stats.evaluation_set_variance``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bert_workbook.measure._common import _as_labels, _check_lengths


def binary_auc(scores, labels) -> float:
    """Ranking AUC of ``scores`` for class 1 (ties count one half); NaN with one class only."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def evaluate_logits(logits, labels) -> dict:
    """Cross-entropy, accuracy, macro-F1, per-class recall and (two classes) AUC of ``logits``
    against ``labels``."""
    from bert_workbook.training import classification_metrics

    logits = torch.as_tensor(logits, dtype=torch.float32)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (examples, labels >= 2), got {tuple(logits.shape)}")
    y = _as_labels(labels, logits.shape[1])
    _check_lengths(logits, y, "logits and labels")
    result = {"loss": float(nn.functional.cross_entropy(logits, y)),
              **classification_metrics(y.tolist(), logits.argmax(1).tolist(), logits.shape[1])}
    if logits.shape[1] == 2:
        result["auc"] = binary_auc((logits[:, 1] - logits[:, 0]).numpy(), y.numpy())
    return result


# ---------------------------------------------------------------------------------------------
# Decision thresholds


def macro_f1_at_thresholds(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Every useful threshold on ``scores`` (predict class 1 at or above it: below the lowest
    score, between each pair of neighbouring distinct scores, above the highest) and the binary
    macro-F1 of each, all at once from cumulative counts."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or len(s) != len(y) or len(s) == 0:
        raise ValueError("scores and labels must be non-empty, 1-d and of the same length")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], (y[order] == 1).astype(np.int64)
    positives, negatives = y.sum(), len(y) - y.sum()
    # a cut after k examples (k = 0..n) predicts the top k positive; cut only between distinct scores
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(s) != 0) + 1, [len(s)]])
    tp = np.concatenate([[0], np.cumsum(y)])[cuts]
    fp = cuts - tp
    fn, tn = positives - tp, negatives - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_pos = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        f1_neg = np.where(2 * tn + fn + fp > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
    upper = np.concatenate([[s[0] + 1], s])[cuts]        # the score just above the cut
    lower = np.concatenate([s, [s[-1] - 1]])[cuts]       # the score just below it
    return (upper + lower) / 2, (f1_pos + f1_neg) / 2


def _binary_macro_f1(labels, predicted) -> float:
    """Macro-F1 of 0/1 ``predicted`` against 0/1 ``labels`` (a class never predicted scores 0)."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predicted, labels=[0, 1], average="macro", zero_division=0))


def best_threshold(scores, labels) -> float:
    """The threshold on ``scores`` (predict class 1 at or above it) that maximises macro-F1 on
    these labels (the first of equals, from the highest threshold down)."""
    thresholds, f1 = macro_f1_at_thresholds(scores, labels)
    return float(thresholds[int(np.argmax(f1))])


def stratified_halves(labels, seed: int = 0) -> np.ndarray:
    """A boolean mask that picks half of the examples of each class at random (seeded)."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    half = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        half[rows[: len(rows) // 2]] = True
    return half


def held_out_threshold_f1(scores, labels, *, seed: int = 0) -> dict:
    """Macro-F1 at a threshold that was tuned on data it is not scored on: split the held-out
    set in two stratified halves, tune on one, score on the other, and swap; report the mean of
    the two scores and the two thresholds (the first tuned on :func:`stratified_halves`' half,
    the second on the rest)."""
    s = np.asarray(scores, dtype=np.float64)
    y = _as_labels(labels, 2).numpy()
    _check_lengths(s, y, "scores and labels")
    half = stratified_halves(y, seed)
    results, thresholds = [], []
    for tune, score in ((half, ~half), (~half, half)):
        t = best_threshold(s[tune], y[tune])
        thresholds.append(t)
        results.append(_binary_macro_f1(y[score], (s[score] >= t).astype(int)))
    return {"macro_f1": float(np.mean(results)), "thresholds": thresholds}


def margin(logits) -> np.ndarray:
    """Class 1's logit minus class 0's: the score a binary threshold is set on."""
    logits = torch.as_tensor(logits, dtype=torch.float32)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"expected (examples, 2) logits, got shape {tuple(logits.shape)}")
    return (logits[:, 1] - logits[:, 0]).numpy()


def decision_scores(logits, labels, *, prior=None, seed: int = 0) -> dict:
    """The three ways a binary classifier is judged in the course: ranking (AUC), ``argmax``
    macro-F1, and macro-F1 at a threshold tuned on the other half of the held-out set; with
    ``prior``, also argmax macro-F1 after post-hoc logit adjustment."""
    metrics = evaluate_logits(logits, labels)
    result = {"AUC": metrics["auc"], "argmax F1": metrics["macro_f1"],
              "tuned-threshold F1": held_out_threshold_f1(margin(logits), labels, seed=seed)["macro_f1"]}
    if prior is not None:
        result["logit-adjusted F1"] = evaluate_logits(adjust_logits(logits, prior), labels)["macro_f1"]
    return result


def early_stopped_scores(snapshots: dict, labels, *, seed: int = 0) -> dict:
    """Early stopping with no peeking: on one stratified half of the held-out set (the halves of
    :func:`held_out_threshold_f1`) pick the evaluation step whose logits rank best (AUC), then
    score that step's logits on the other half: AUC, argmax macro-F1, and macro-F1 at the
    threshold tuned on the picking half; then swap the halves. Returns the mean of the two, in
    :func:`decision_scores`' keys, and the two ``steps`` picked. ``snapshots``: step -> logits
    (``train_top_layers(..., keep_logits=True)``)."""
    if not snapshots:
        raise ValueError("snapshots is empty: train with keep_logits=True")
    y = _as_labels(labels, 2).numpy()
    steps = sorted(snapshots)
    scores = {step: margin(snapshots[step]) for step in steps}
    for step in steps:
        _check_lengths(scores[step], y, "snapshot logits and labels")
    half = stratified_halves(y, seed)
    results, picked = [], []
    for pick, score in ((half, ~half), (~half, half)):
        step = max(steps, key=lambda s: (binary_auc(scores[s][pick], y[pick]), -s))  # ties: earlier
        s = scores[step]
        threshold = best_threshold(s[pick], y[pick])
        predicted = np.asarray(snapshots[step]).argmax(1)
        results.append({
            "AUC": binary_auc(s[score], y[score]),
            "argmax F1": _binary_macro_f1(y[score], predicted[score]),
            "tuned-threshold F1": _binary_macro_f1(y[score], (s[score] >= threshold).astype(int))})
        picked.append(step)
    mean = {key: float(np.mean([r[key] for r in results])) for key in results[0]}
    return {**mean, "steps": picked}


def weighted_auc(labels, scores, weights) -> np.ndarray:
    """AUC of ``scores`` (higher: class 1) under each row of bootstrap ``weights`` (resamples,
    examples): the weighted share of (positive, negative) pairs ranked right, ties counting half.
    A metric for ``stats.evaluation_set_variance``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2:
        s = margin(s)
    y = np.asarray(labels) == 1
    order = np.argsort(s, kind="stable")
    s, y, w = s[order], y[order], np.asarray(weights, dtype=np.float64)[:, order]
    negatives, positives = np.where(~y, w, 0.0), np.where(y, w, 0.0)
    _, first, counts = np.unique(s, return_index=True, return_counts=True)  # groups of tied scores
    group = np.repeat(np.arange(len(first)), counts)
    before = np.cumsum(negatives, axis=1) - negatives                      # negatives earlier in the order
    below = before[:, first][:, group]                                      # ... strictly below the score
    tied = np.add.reduceat(negatives, first, axis=1)[:, group]              # ... with the same score
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample with one class: NaN
        return ((below + 0.5 * tied) * positives).sum(1) / (positives.sum(1) * negatives.sum(1))


def weighted_argmax_f1(labels, logits, weights) -> np.ndarray:
    """Binary macro-F1 of the argmax of ``logits`` (or 0/1 predictions) under each row of
    bootstrap ``weights``; a class never predicted scores 0. A metric for
    ``stats.evaluation_set_variance``."""
    out = np.asarray(logits)
    predicted = out.argmax(1) if out.ndim == 2 else out
    y, w = np.asarray(labels) == 1, np.asarray(weights, dtype=np.float64)
    p = predicted == 1
    tp, fp, fn = w @ (p & y), w @ (p & ~y), w @ (~p & y)
    tn = w.sum(1) - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_pos = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        f1_neg = np.where(2 * tn + fn + fp > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
    return (f1_pos + f1_neg) / 2


def adjust_logits(logits, prior, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al., 2021): subtract ``tau * log(prior)``, which
    turns a classifier of the training skew into one of balanced classes."""
    logits = torch.as_tensor(logits, dtype=torch.float32)
    prior = torch.as_tensor(prior, dtype=torch.float32)
    if prior.shape != logits.shape[-1:] or (prior <= 0).any():
        raise ValueError(f"prior must hold {logits.shape[-1]} positive class shares")
    return logits - tau * prior.log()


RESAMPLED = {"AUC": weighted_auc, "argmax F1": weighted_argmax_f1}
"""The metrics of :func:`decision_scores` that have a form under bootstrap weights, by name: what
``stats.compare_table(evaluation_metric=...)`` takes to cover the evaluation set."""
