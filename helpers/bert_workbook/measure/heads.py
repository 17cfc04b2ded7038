"""Heads on cached features, trained to convergence: full-batch L-BFGS (:func:`fit_linear_head`)
or mini-batch AdamW with a learning curve (:func:`train_head`); the losses the comparisons share
(class weights, logit adjustment)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from bert_workbook.measure._common import _as_features, _as_labels, _check_lengths, log_prior_bias
from bert_workbook.measure.metrics import binary_auc, evaluate_logits


def weighted_cross_entropy(class_weights, normalization: str = "pytorch") -> Callable:
    """Class-weighted cross-entropy. ``"pytorch"``: ``F.cross_entropy(weight=w)``, which divides
    by the sum of the weights of the batch's targets (a batch without a minority example then
    weighs as much as any other). ``"per_example"``: ``sum(w_y * ce) / batch size``, which keeps
    each example's weight whatever else is in its batch. On the whole data set with "balanced"
    weights both are the same; on mini-batches they are not."""
    if normalization not in ("pytorch", "per_example"):
        raise ValueError(f"normalization must be 'pytorch' or 'per_example', got {normalization!r}")
    weight = torch.as_tensor(class_weights, dtype=torch.float32)

    def loss(logits, labels):
        w = weight.to(logits.device)
        if normalization == "pytorch":
            return nn.functional.cross_entropy(logits, labels, weight=w)
        return (w[labels] * nn.functional.cross_entropy(logits, labels, reduction="none")).mean()

    return loss


def logit_adjusted_cross_entropy(prior, tau: float = 1.0) -> Callable:
    """The logit-adjusted loss (Menon et al., 2021): cross-entropy of ``logits + tau * log(prior)``.
    The model's own logits then learn the balanced decision, with no resampling."""
    shift = tau * torch.as_tensor(prior, dtype=torch.float32).clamp_min(1e-12).log()

    def loss(logits, labels):
        return nn.functional.cross_entropy(logits + shift.to(logits.device), labels)

    return loss


# ---------------------------------------------------------------------------------------------
# Heads on cached features


class LinearHead(nn.Module):
    """A linear layer (or, with ``hidden``, a one-hidden-layer MLP) on fixed features."""

    def __init__(self, dim: int, num_labels: int, hidden: int = 0, bias_init=None):
        super().__init__()
        if hidden:
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_labels))
        else:
            self.net = nn.Sequential(nn.Linear(dim, num_labels))
        if bias_init is not None:
            with torch.no_grad():
                self.net[-1].bias.copy_(torch.as_tensor(bias_init, dtype=torch.float32))

    def forward(self, x):
        return self.net(x)


def _standardizer(x: torch.Tensor):
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    return lambda z: (z - mean) / std


def fit_linear_head(features, labels, *, num_labels: int | None = None, sample_weight=None,
                    loss_fn: Callable | None = None, l2: float = 1e-2, max_iter: int = 500,
                    tolerance: float = 1e-6) -> Callable:
    """A linear classifier trained to convergence by full-batch L-BFGS on standardised features:
    mean loss (``loss_fn``, default cross-entropy, per-example ``sample_weight`` optional) plus
    ``l2 * |W|^2 / 2`` (with two classes that is scikit-learn's ``LogisticRegression`` with
    ``C = 2 / (l2 * n)`` on the same standardised features). Deterministic; milliseconds for a
    thousand examples. Returns a function from features to logits, with ``.converged`` (largest
    gradient entry under 1e-3 at the end)."""
    x = _as_features(features)
    y = _as_labels(labels, num_labels)
    _check_lengths(x, y, "features and labels")
    num_labels = num_labels or int(y.max()) + 1
    if num_labels < 2:
        raise ValueError("need at least two classes")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    weight = None
    if sample_weight is not None:
        weight = torch.as_tensor(sample_weight, dtype=torch.float32)
        _check_lengths(x, weight, "features and sample_weight")
    scale = _standardizer(x)
    xs = scale(x)
    head = LinearHead(x.shape[1], num_labels, bias_init=log_prior_bias(y, num_labels))
    nn.init.zeros_(head.net[0].weight)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=max_iter,
                                  tolerance_grad=tolerance, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        logits = head(xs)
        if loss_fn is not None:
            loss = loss_fn(logits, y)
        elif weight is not None:
            loss = (weight * nn.functional.cross_entropy(logits, y, reduction="none")).mean()
        else:
            loss = nn.functional.cross_entropy(logits, y)
        loss = loss + 0.5 * l2 * head.net[0].weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    objective()
    grad = torch.cat([p.grad.flatten() for p in head.parameters()]).abs().max().item()

    @torch.no_grad()
    def predict(z):
        return head(scale(_as_features(z)))

    predict.converged = grad < 1e-3
    predict.head = head
    return predict


def choose_l2(features, labels, *, grid: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0),
              folds: int = 5, seed: int = 0, score: str = "log_loss", sample_weight=None,
              loss_fn: Callable | None = None, resample: Callable | None = None) -> float:
    """The ``l2`` of :func:`fit_linear_head` that scores best under stratified ``folds``-fold
    cross-validation on these training data: regularisation chosen without the held-out set, and
    the course's one way to tune a method fairly: each method on its own training data, with its
    own loss, weights and resampling.

    ``resample(labels, seed)``, for a method that resamples its training data (oversampling,
    undersampling), returns the rows to fit on; it is applied **inside** each fold, to the fold's
    fitting rows only. Cross-validating on data already oversampled would put copies of one
    sentence on both sides of a fold and reward memorising them.

    ``score`` "log_loss" (lowest cross-validated cross-entropy) suits plain cross-entropy;
    "auc" (highest mean fold AUC, two classes) suits any loss, because a loss that reweights or
    reshapes the examples (class weights, focal loss) changes the scale of the objective, and so
    how strongly one ``l2`` pulls the weights to zero. ``sample_weight`` (sliced per fold) and
    ``loss_fn`` are passed to :func:`fit_linear_head`."""
    from sklearn.model_selection import StratifiedKFold

    x = _as_features(features)
    y = _as_labels(labels)
    _check_lengths(x, y, "features and labels")
    if not grid or any(g < 0 for g in grid):
        raise ValueError("grid must hold one or more l2 values >= 0")
    if score not in ("log_loss", "auc"):
        raise ValueError(f"score must be 'log_loss' or 'auc', got {score!r}")
    num_labels = int(y.max()) + 1
    if score == "auc" and num_labels != 2:
        raise ValueError("score='auc' needs two classes")
    weight = None if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.float32)
    if weight is not None:
        _check_lengths(x, weight, "features and sample_weight")
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x.numpy(), y.numpy()))
    results = []
    for l2 in grid:
        total = 0.0
        for fit_rows, test_rows in splits:
            if resample is not None:
                fit_rows = fit_rows[np.asarray(resample(y[fit_rows].numpy(), seed))]
            predict = fit_linear_head(x[fit_rows], y[fit_rows], num_labels=num_labels, l2=l2, loss_fn=loss_fn,
                                      sample_weight=None if weight is None else weight[fit_rows])
            logits = predict(x[test_rows])
            if score == "auc":
                total -= binary_auc(logits[:, 1] - logits[:, 0], y[test_rows]) * len(test_rows)
            else:
                total += float(nn.functional.cross_entropy(logits, y[test_rows], reduction="sum"))
        results.append(total / len(y))
    return float(grid[int(np.argmin(results))])


@dataclass
class Curve:
    """A learning curve: the evaluation every few steps of one run."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    macro_f1: list[float] = field(default_factory=list)
    auc: list[float] = field(default_factory=list)

    def add(self, step: int, train_loss: float, metrics: dict) -> None:
        self.step.append(step)
        self.train_loss.append(train_loss)
        for name in ("loss", "accuracy", "macro_f1", "auc"):
            getattr(self, name).append(metrics.get(name, float("nan")))

    def frame(self):
        """The curve as a DataFrame, one row per evaluation."""
        import pandas as pd

        return pd.DataFrame({k: v for k, v in self.__dict__.items()})

    def settled(self, metric: str = "loss", last: int = 3, tolerance: float = 0.01) -> bool:
        """True when ``metric`` moved by less than ``tolerance`` over the last ``last`` evaluations."""
        values = getattr(self, metric)[-last:]
        return len(values) == last and max(values) - min(values) < tolerance

    def last_change(self, metric: str = "macro_f1", digits: int = 3) -> float | None:
        """How much ``metric`` moved between the last two evaluations (rounded to ``digits``), or
        None when the run was evaluated fewer than twice (a smoke test's truncated run)."""
        values = getattr(self, metric)
        return round(values[-1] - values[-2], digits) if len(values) > 1 else None


@dataclass
class Run:
    """One trained model: its held-out ``logits`` at the end, ``metrics`` of those, the ``curve``,
    and ``predict`` (features or cached states -> logits)."""

    logits: torch.Tensor
    metrics: dict
    curve: Curve
    predict: Callable | None = None
    snapshots: dict = field(default_factory=dict)


def _batch_order(labels: torch.Tensor, steps: int, batch_size: int, generator: torch.Generator,
                 balanced: bool) -> torch.Tensor:
    """``steps * batch_size`` example indices: shuffled epochs, or class-balanced draws with
    replacement (what a ``WeightedRandomSampler`` with inverse-frequency weights draws)."""
    need = steps * batch_size
    if balanced:
        counts = torch.bincount(labels).double()
        weights = 1.0 / counts[labels]
        return torch.multinomial(weights, need, replacement=True, generator=generator)
    epochs = math.ceil(need / len(labels))
    return torch.cat([torch.randperm(len(labels), generator=generator) for _ in range(epochs)])[:need]


def _group_by_length(order: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator,
                     chunk: int = 32) -> torch.Tensor:
    """Rearrange ``order`` (steps, batch) so that each batch holds examples of similar length,
    as ``Trainer``'s ``group_by_length`` does: within each run of ``chunk`` batches, sort the
    examples by length, cut them into batches again and shuffle those batches. The examples and
    how often each is seen do not change; the padding, and so the compute, shrinks."""
    steps, batch_size = order.shape
    grouped = []
    for start in range(0, steps, chunk):
        part = order[start:start + chunk].flatten()
        part = part[torch.argsort(lengths[part], stable=True)].view(-1, batch_size)
        grouped.append(part[torch.randperm(len(part), generator=generator)])
    return torch.cat(grouped)


def train_head(features, labels, *, eval_features, eval_labels, steps: int = 1500,
               batch_size: int = 16, lr: float = 3e-3, l2: float = 1e-2, standardize: bool = True,
               loss_fn: Callable | None = None, balanced_batches: bool = False, hidden: int = 0,
               seed: int = 0, eval_every: int = 100, prior_bias: bool = True,
               num_labels: int | None = None) -> Run:
    """A head on cached features trained with mini-batch Adam (learning rate decayed linearly to
    0), evaluated every ``eval_every`` steps on held-out features: the cheap stand-in for a
    fine-tuning run whose batches matter. Its objective is :func:`fit_linear_head`'s (mean loss +
    ``l2 * |W|^2 / 2``), so a run long enough reaches the same optimum. ``balanced_batches``
    draws classes equally often (a weighted sampler); ``prior_bias`` starts the bias at the log
    class prior; ``standardize=False`` feeds the features as they are."""
    x, y = _as_features(features), _as_labels(labels, num_labels)
    ex = _as_features(eval_features, "eval_features")
    num_labels = num_labels or int(max(int(y.max()), int(_as_labels(eval_labels).max()))) + 1
    ey = _as_labels(eval_labels, num_labels, "eval_labels")
    _check_lengths(x, y, "features and labels")
    _check_lengths(ex, ey, "eval_features and eval_labels")
    if steps < 1 or batch_size < 1 or lr <= 0 or eval_every < 1:
        raise ValueError("steps, batch_size, lr and eval_every must be positive")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    scale = _standardizer(x) if standardize else (lambda z: z)
    xs, exs = scale(x), scale(ex)
    head = LinearHead(x.shape[1], num_labels, hidden,
                      bias_init=log_prior_bias(y, num_labels) if prior_bias else None)
    weights = [p for n, p in head.named_parameters() if n.endswith("weight")]
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / steps))
    loss_fn = loss_fn or nn.functional.cross_entropy
    order = _batch_order(y, steps, batch_size, generator, balanced_batches).view(steps, batch_size)
    curve, recent = Curve(), []
    for step in range(1, steps + 1):
        rows = order[step - 1]
        loss = loss_fn(head(xs[rows]), y[rows])
        optimizer.zero_grad()
        (loss + 0.5 * l2 * sum(w.pow(2).sum() for w in weights)).backward()
        optimizer.step()
        schedule.step()
        recent.append(loss.item())
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                curve.add(step, float(np.mean(recent)), evaluate_logits(head(exs), ey))
            recent = []
    head.eval()
    with torch.no_grad():
        logits = head(exs)

    @torch.no_grad()
    def predict(z):
        return head(scale(_as_features(z)))

    return Run(logits, evaluate_logits(logits, ey), curve, predict)
