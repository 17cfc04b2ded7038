"""Class imbalance: build an imbalanced training set, rebalance it (oversampling, undersampling,
a weighted sampler, class weights), and diagnose a classifier that predicts one label for
everything. Notebooks 05 and 06 share these."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from bert_workbook.arguments import check_count

from .training import check_labels


def class_counts(labels: Sequence[int], num_labels: int) -> np.ndarray:
    """How many examples each class has (``num_labels`` entries, zeros included)."""
    return np.bincount(check_labels(labels, num_labels), minlength=num_labels)


def imbalanced_subset(labels: Sequence[int], per_class: Mapping[int, int], seed: int) -> np.ndarray:
    """Indices of a random subset with ``per_class[c]`` examples of each class ``c`` (sorted)."""
    if not isinstance(per_class, Mapping):
        raise TypeError(f"per_class must be a dict of class -> number of examples, e.g. {{0: 500, 1: 50}}, "
                        f"got {type(per_class).__name__}")
    check_count(seed, "seed", minimum=0)
    labels = np.asarray(list(labels))
    rng = np.random.default_rng(seed)
    picked = []
    for label, n in per_class.items():
        rows = np.flatnonzero(labels == label)
        if n < 0 or n > len(rows):
            raise ValueError(f"class {label} has {len(rows)} examples; cannot take {n}")
        picked.append(rng.choice(rows, size=n, replace=False))
    return np.sort(np.concatenate(picked))


def _class_ids(labels) -> np.ndarray:
    """``labels`` as a 1-d integer array, or a ValueError that says what to pass."""
    labels = np.asarray(list(labels))
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError("labels must be a non-empty 1-d sequence")
    if not np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool or labels.min() < 0:
        raise ValueError(f"labels must be integer class ids (0, 1, ...), got {labels[:3].tolist()}...: map "
                         "label names to ids first (e.g. with the model config's label2id)")
    return labels


def _resampling_plan(labels: Sequence[int], factors: Mapping[int, float] | None, grow: bool):
    """The labels as an array and the target size of each class (checked)."""
    if factors is not None and not isinstance(factors, Mapping):
        raise TypeError(f"factors must be a dict of class -> factor, e.g. {{1: 2.0}}, got {type(factors).__name__}")
    labels = _class_ids(labels)
    present, counts = np.unique(labels, return_counts=True)
    if factors is None:
        target = counts.max() if grow else counts.min()
        return labels, {int(c): int(target) for c in present}
    targets = {int(c): int(n) for c, n in zip(present, counts)}
    for label, factor in factors.items():
        if label not in targets:
            raise ValueError(f"class {label!r} does not occur in the labels (classes: {sorted(targets)})")
        if not (isinstance(factor, (int, float)) and math.isfinite(factor)):
            raise ValueError(f"the factor of class {label} must be a number, got {factor!r}")
        if grow and factor < 1:
            raise ValueError(f"oversampling factors must be >= 1 (class {label}: {factor}); "
                             "a factor below 1 would drop examples")
        if not grow and not 0 < factor <= 1:
            raise ValueError(f"undersampling factors must lie in (0, 1] (class {label}: {factor})")
        targets[label] = max(1, round(targets[label] * factor))
    return labels, targets


def oversample_minority(labels: Sequence[int], seed: int,
                        factors: Mapping[int, float] | None = None) -> np.ndarray:
    """Indices for random oversampling: every example once, plus random duplicates (drawn with
    replacement within each class) until each class has as many as the largest class, or
    ``round(count * factor)`` for the classes in ``factors``. Never drops an example."""
    check_count(seed, "seed", minimum=0)
    labels, targets = _resampling_plan(labels, factors, grow=True)
    rng = np.random.default_rng(seed)
    extra = []
    for label, target in targets.items():
        rows = np.flatnonzero(labels == label)
        extra.append(rng.choice(rows, size=target - len(rows), replace=True))
    return np.concatenate([np.arange(len(labels)), *extra])


def undersample_majority(labels: Sequence[int], seed: int,
                         factors: Mapping[int, float] | None = None) -> np.ndarray:
    """Indices for random undersampling: each class cut (without replacement) to the size of
    the smallest class, or to ``round(count * factor)`` for the classes in ``factors``."""
    check_count(seed, "seed", minimum=0)
    labels, targets = _resampling_plan(labels, factors, grow=False)
    rng = np.random.default_rng(seed)
    kept = []
    for label, target in targets.items():
        rows = np.flatnonzero(labels == label)
        kept.append(rng.choice(rows, size=target, replace=False))
    return np.sort(np.concatenate(kept))


def balanced_class_weights(labels: Sequence[int], num_labels: int) -> torch.Tensor:
    """Weights ``n / (num_labels * count_c)`` (scikit-learn's "balanced"): each class then
    contributes equally to a weighted cross-entropy. A class without examples gets weight 0."""
    from sklearn.utils.class_weight import compute_class_weight

    counts = class_counts(labels, num_labels)  # checks the labels
    present = np.flatnonzero(counts)
    y = np.repeat(np.arange(num_labels), counts)
    weights = np.zeros(num_labels)
    # scikit-learn divides by the number of classes present: rescale to all num_labels classes
    weights[present] = compute_class_weight("balanced", classes=present, y=y) * len(present) / num_labels
    return torch.tensor(weights, dtype=torch.float32)


def balanced_sampler(labels: Sequence[int], seed: int, num_samples: int | None = None):
    """A ``WeightedRandomSampler`` that draws every class equally often (with replacement),
    ``num_samples`` draws per epoch (default: the number of examples)."""
    labels = _class_ids(labels)
    if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer))
                                    or num_samples < 1):
        raise ValueError(f"num_samples must be a positive int (or None for one draw per example), got {num_samples!r}")
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return torch.utils.data.WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), len(labels) if num_samples is None else int(num_samples),
        replacement=True,
        generator=torch.Generator().manual_seed(seed))


def entropy_bits(probabilities: np.ndarray) -> float:
    """Shannon entropy in bits of a probability vector (0 log 0 = 0)."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[p > 0]
    return float(max(0.0, -(p * np.log2(p)).sum()))  # max: never print -0.00


@dataclass
class CollapseReport:
    """What :func:`diagnose_collapse` found; ``verdicts`` lists the warnings in plain words."""

    train_counts: list[int]
    predicted_counts: list[int]
    true_counts: list[int]
    recall: list[float]
    prediction_entropy_bits: float
    max_entropy_bits: float
    logit_spread: float
    auc: float | None
    loss_first: float | None
    loss_last: float | None
    prior_loss: float | None
    mapping_round_trips: bool | None
    verdicts: list[str] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        """True when one class takes at least 95% of the predictions."""
        return max(self.predicted_counts) >= 0.95 * sum(self.predicted_counts)

    def __str__(self) -> str:
        lines = [
            f"training labels per class : {self.train_counts}",
            f"true labels per class     : {self.true_counts}",
            f"predictions per class     : {self.predicted_counts}",
            f"recall per class          : {[round(r, 3) for r in self.recall]}",
            f"prediction entropy        : {self.prediction_entropy_bits:.2f} bits "
            f"(max {self.max_entropy_bits:.2f})",
            f"logit spread across inputs: {self.logit_spread:.3f}",
        ]
        if self.auc is not None:
            lines.append(f"ranking AUC (binary)      : {self.auc:.3f}")
        if self.loss_first is not None:
            lines.append(f"training loss             : {self.loss_first:.3f} -> {self.loss_last:.3f} "
                         f"(predicting the class shares alone: {self.prior_loss:.3f})")
        if self.mapping_round_trips is not None:
            lines.append(f"id2label/label2id         : {'round-trip' if self.mapping_round_trips else 'BROKEN'}")
        lines += [f"! {v}" for v in self.verdicts] or ["no sign of collapse"]
        return "\n".join(lines)

    __repr__ = __str__


def diagnose_collapse(logits, y_true: Sequence[int], train_labels: Sequence[int], *,
                      step_loss: Sequence[float] | None = None, id2label: Mapping | None = None,
                      label2id: Mapping | None = None, window: int = 10) -> CollapseReport:
    """The "collapse doctor": checks what usually explains a classifier that predicts one label.

    ``logits`` (n, num_labels) are the model's outputs on held-out data with labels ``y_true``;
    ``train_labels`` are the labels it was trained on; ``step_loss`` its training-loss history;
    ``id2label``/``label2id`` the config's mappings. Reports class balance, the prediction
    histogram and its entropy, per-class recall, whether the logits depend on the input at all,
    whether the loss moved below what the class shares alone give, and whether the label mapping
    round-trips.
    """
    logits = torch.as_tensor(logits, dtype=torch.float32)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (examples, labels >= 2), got {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError(f"{int((~torch.isfinite(logits)).any(1).sum())} examples have NaN or infinite logits: "
                         "training diverged (a learning rate too high, or a loss that overflowed), which is "
                         "a different problem from collapse; fix it first")
    num_labels = logits.shape[1]
    y_true = check_labels(y_true, num_labels, "y_true")
    if len(y_true) != len(logits):
        raise ValueError(f"{len(logits)} rows of logits but {len(y_true)} labels")
    train_counts = class_counts(train_labels, num_labels)
    predicted = logits.argmax(1).numpy()
    predicted_counts = np.bincount(predicted, minlength=num_labels)
    true_counts = np.bincount(y_true, minlength=num_labels)
    recall = [float((predicted[y_true == c] == c).mean()) if true_counts[c] else float("nan")
              for c in range(num_labels)]
    entropy = entropy_bits(predicted_counts / predicted_counts.sum())
    # how much the winning margin moves between inputs; ~0 means the input is ignored
    spread = float((logits - logits.mean(1, keepdim=True)).std(0).mean())
    auc = None
    if num_labels == 2 and 0 < true_counts[1] < len(y_true):
        from bert_workbook.measure import binary_auc

        auc = binary_auc((logits[:, 1] - logits[:, 0]).numpy(), y_true)
    shares = train_counts / train_counts.sum()
    prior_loss = float(-(shares[shares > 0] * np.log(shares[shares > 0])).sum())
    loss_first = loss_last = None
    if step_loss is not None and len(step_loss) > 0:
        k = max(1, min(window, len(step_loss) // 2 or 1))
        loss_first, loss_last = float(np.mean(step_loss[:k])), float(np.mean(step_loss[-k:]))
    round_trips = None
    if id2label is not None and label2id is not None:
        round_trips = all(label2id.get(name) == int(i) for i, name in id2label.items()) and \
            len(id2label) == len(label2id) == num_labels

    verdicts = []
    majority = int(train_counts.argmax())
    if train_counts.min() < 0.2 * train_counts.max():
        verdicts.append(f"imbalanced training labels: class {majority} has "
                        f"{train_counts.max() / train_counts.sum():.0%} of them")
    top = int(predicted_counts.argmax())
    one_sided = predicted_counts[top] >= 0.95 * len(predicted)
    if one_sided:
        verdicts.append(f"collapsed: {predicted_counts[top] / len(predicted):.0%} of the predictions "
                        f"are class {top}")
    low = [c for c in range(num_labels) if true_counts[c] and recall[c] < 0.2]
    if low:
        verdicts.append(f"classes almost never found (recall < 0.2): {low}")
    if auc is not None and one_sided and auc >= 0.7:
        verdicts.append(f"yet the scores still rank the classes (AUC {auc:.2f}): the model learned "
                        "something, and its bias towards one class hides it")
    if spread < 0.05:
        verdicts.append(f"the logits hardly depend on the input (spread {spread:.3f}): "
                        "the model ignores the text")
    if loss_first is not None and loss_last > 0.95 * min(loss_first, prior_loss):
        verdicts.append(f"the loss did not fall below the class-prior loss ({loss_last:.3f} vs "
                        f"{prior_loss:.3f}): nothing beyond the class shares was learned")
    if round_trips is False:
        verdicts.append("id2label and label2id disagree: labels are decoded with a different "
                        "mapping than they were encoded with")
    return CollapseReport([int(x) for x in train_counts], [int(x) for x in predicted_counts],
                          [int(x) for x in true_counts], recall, entropy, math.log2(num_labels),
                          spread, auc, loss_first, loss_last, prior_loss if loss_first is not None else None,
                          round_trips, verdicts)
