"""The measurement kit: experiments cheap enough to run to convergence, over many draws, with
uncertainty. Notebooks 04 and 05 (and later 06) build their comparisons on it.

* **Feature cache** (:func:`encode_features`): run the frozen encoder once over a dataset and keep
  the [CLS] and mean-pooled vector of every layer, in memory (and optionally on disk).
* **Heads to convergence** on cached features: full-batch L-BFGS (:func:`fit_linear_head`,
  deterministic, milliseconds) or mini-batch AdamW with a learning curve (:func:`train_head`),
  whose batches matter when the lesson is about batches (samplers, class weights).
* **Partial fine-tuning** (:func:`cache_hidden_states`, :class:`TopLayersClassifier`,
  :func:`train_top_layers`): freeze the embeddings and the lower layers, compute the lower layers'
  output once, and fine-tune only the top layers and the head from that cache.
* **Learning curves**: every trainer evaluates every ``eval_every`` steps (loss, macro-F1, AUC),
  so a step budget is a point on a curve, never a verdict.
* **Intervals** (:func:`bootstrap_interval`, :func:`paired_difference`): repeated draws compared
  with a baseline by their paired differences, with a bootstrap 95% interval.
* **Decisions** (:func:`held_out_threshold_f1`, :func:`adjust_logits`,
  :func:`logit_adjusted_cross_entropy`, :func:`weighted_cross_entropy`): a threshold tuned on one
  half of the held-out data and scored on the other, and the logit-adjustment family.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bert_workbook import env
from bert_workbook.training import POOLINGS as HEAD_POOLINGS
from bert_workbook.training import _length_sorted_batches, check_labels, pool_hidden

# ---------------------------------------------------------------------------------------------
# Small shared pieces


def _as_labels(labels, num_labels: int | None = None, name: str = "labels") -> torch.Tensor:
    """Labels as a 1-d int64 tensor, checked against ``num_labels`` when given."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name} must be a non-empty 1-d sequence of label ids")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integer label ids, got dtype {array.dtype}")
    if array.min() < 0:
        raise ValueError(f"{name} must be >= 0; found {int(array.min())}")
    if num_labels is not None:
        check_labels(array, num_labels, name)
    return torch.as_tensor(array, dtype=torch.long)


def _as_features(features, name: str = "features") -> torch.Tensor:
    x = torch.as_tensor(features, dtype=torch.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty (examples, dimensions) array, got shape "
                         f"{tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_lengths(a, b, names: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{names} must have the same length, got {len(a)} and {len(b)}")


def class_prior(labels, num_labels: int) -> torch.Tensor:
    """The share of each class in ``labels`` (``num_labels`` entries, summing to 1)."""
    y = _as_labels(labels, num_labels)
    return torch.bincount(y, minlength=num_labels).float() / len(y)


def log_prior_bias(labels, num_labels: int, floor: float = 1e-3) -> torch.Tensor:
    """log of the class shares (floored): the bias that makes an untrained head predict the prior,
    so its first steps go to reading the input rather than to learning the class shares."""
    return class_prior(labels, num_labels).clamp_min(floor).log()


# ---------------------------------------------------------------------------------------------
# Metrics of one set of logits


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
# The feature cache

POOLINGS = ("cls", "mean")


@dataclass
class FeatureSet:
    """Sentence vectors of every layer: ``cls[i, k]`` and ``mean[i, k]`` are example ``i``'s
    [CLS] vector and mean over real tokens after layer ``k`` (0 = the embeddings)."""

    cls: torch.Tensor
    mean: torch.Tensor
    labels: torch.Tensor | None
    pooler: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.cls)

    @property
    def num_layers(self) -> int:
        return self.cls.shape[1] - 1

    def get(self, pooling: str = "mean", layer: int = -1) -> torch.Tensor:
        """The (examples, hidden) features of one pooling and one layer (-1: the last);
        ``"pooler"`` is the pretrained pooler (dense + tanh) on the last layer's [CLS]."""
        if pooling == "pooler":
            if self.pooler is None:
                raise ValueError("this encoder has no pooler")
            return self.pooler
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not -self.cls.shape[1] <= layer < self.cls.shape[1]:
            raise ValueError(f"layer must lie in [0, {self.num_layers}] (or count from -1), got {layer}")
        return (self.cls if pooling == "cls" else self.mean)[:, layer]


_FEATURE_CACHE: dict[str, FeatureSet] = {}


def dataset_key(model_name: str, dataset) -> str:
    """A digest of the model name and every token id of a tokenized dataset: the cache key."""
    digest = hashlib.sha256(model_name.encode())
    for ids in dataset["input_ids"]:
        digest.update(np.asarray(ids, dtype=np.int32).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def weights_digest(model) -> str:
    """A digest of every parameter and buffer of ``model``: equal digests, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _disk_path(kind: str, encoder, dataset, cache_dir, *extra) -> Path | None:
    """Where a frozen computation of ``encoder`` on ``dataset`` is kept on disk (``cache_dir``, or
    the folder of ``env.cache_dir()``), or None without a folder. The name holds the encoder's
    weights digest and the token ids' digest, so changed weights or inputs never read stale files."""
    folder = Path(cache_dir) if cache_dir is not None else env.cache_dir()
    if folder is None:
        return None
    key = dataset_key(weights_digest(encoder) + "".join(f"-{x}" for x in extra), dataset)
    return folder / f"{kind}-{key}.pt"


def _save(path: Path | None, value: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(value, partial)
        partial.replace(path)  # atomic: a reader in another process never sees half a file


@torch.no_grad()
def encode_features(encoder, dataset, tokenizer, *, batch_size: int = 64, model_name: str = "",
                    cache_dir: str | Path | None = None, progress: bool = False) -> FeatureSet:
    """Run the frozen ``encoder`` once over a tokenized ``dataset`` and return every layer's [CLS]
    and mean-pooled vectors (a :class:`FeatureSet`, in the dataset's order).

    Results are kept in memory under :func:`dataset_key` (``model_name`` names the encoder in the
    key; pass it when you use more than one), and on disk in ``cache_dir`` (or the folder of
    ``env.cache_dir()``) when there is one, under the encoder's weights and the token ids."""
    from tqdm.auto import tqdm

    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    key = dataset_key(model_name or encoder.config.name_or_path or "encoder", dataset)
    if key in _FEATURE_CACHE:
        return _FEATURE_CACHE[key]
    path = _disk_path("features", encoder, dataset, cache_dir, batch_size)
    if path is not None and path.exists():
        _FEATURE_CACHE[key] = FeatureSet(**torch.load(path))
        return _FEATURE_CACHE[key]
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    loader, unsort = _length_sorted_batches(dataset, tokenizer, batch_size, longest_first=True)
    cls, mean, pooled = [], [], []
    pooler = getattr(encoder, "pooler", None)
    for batch in tqdm(loader, desc="encoding", disable=not progress):
        batch.pop("labels", None)
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = torch.stack(encoder(**batch, output_hidden_states=True).hidden_states, 1)
        mask = batch["attention_mask"][:, None, :, None].to(hidden.dtype)
        cls.append(hidden[:, :, 0].float().cpu().clone())  # a copy: a view would keep the whole batch alive
        mean.append(((hidden * mask).sum(2) / mask.sum(2)).float().cpu())
        if pooler is not None:
            pooled.append(pooler(hidden[:, -1]).float().cpu())
    encoder.train(was_training)
    labels = (torch.as_tensor(list(dataset["label"]), dtype=torch.long)
              if "label" in dataset.column_names else None)
    features = FeatureSet(torch.cat(cls)[unsort], torch.cat(mean)[unsort], labels,
                          torch.cat(pooled)[unsort] if pooled else None)
    del cls, mean, pooled
    env.release_memory()
    _FEATURE_CACHE[key] = features
    _save(path, features.__dict__)
    return features


def clear_feature_cache() -> None:
    """Forget every feature set kept in memory."""
    _FEATURE_CACHE.clear()


# ---------------------------------------------------------------------------------------------
# Losses that the comparisons share


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


def adjust_logits(logits, prior, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al., 2021): subtract ``tau * log(prior)``, which
    turns a classifier of the training skew into one of balanced classes."""
    logits = torch.as_tensor(logits, dtype=torch.float32)
    prior = torch.as_tensor(prior, dtype=torch.float32)
    if prior.shape != logits.shape[-1:] or (prior <= 0).any():
        raise ValueError(f"prior must hold {logits.shape[-1]} positive class shares")
    return logits - tau * prior.log()


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
              loss_fn: Callable | None = None) -> float:
    """The ``l2`` of :func:`fit_linear_head` that scores best under stratified ``folds``-fold
    cross-validation on these training data: regularisation chosen without the held-out set.

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


# ---------------------------------------------------------------------------------------------
# Partial fine-tuning from cached hidden states


def _padded(rows: list[torch.Tensor], value: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` (each (tokens, ...)) padded with ``value`` to the longest, and the attention mask."""
    lengths = torch.tensor([len(r) for r in rows])
    mask = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).long()
    return nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=value), mask


def _run_layers(layers, config, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``hidden`` through BERT ``layers`` in turn, attending to the tokens of ``attention_mask``."""
    from transformers.masking_utils import create_bidirectional_mask

    # positional: transformers 5.0 names the second argument input_embeds, later releases inputs_embeds
    mask = create_bidirectional_mask(config, hidden, attention_mask)
    for layer in layers:
        hidden = layer(hidden, mask)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return hidden


@dataclass
class CachedStates:
    """The hidden states of every example after layer ``layer`` of a frozen encoder, unpadded
    (``states[i]`` has shape (tokens_i, hidden)), with their labels."""

    states: list[torch.Tensor]
    labels: torch.Tensor | None
    layer: int

    def __len__(self) -> int:
        return len(self.states)

    def lengths(self) -> torch.Tensor:
        """The number of tokens of each example."""
        return torch.tensor([len(s) for s in self.states])

    def select(self, rows) -> CachedStates:
        rows = [int(r) for r in rows]
        return CachedStates([self.states[r] for r in rows],
                            None if self.labels is None else self.labels[rows], self.layer)

    def batch(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """The states of ``rows`` padded with zeros to the longest, and their attention mask."""
        return _padded([self.states[int(r)] for r in rows])


class LiveStates:
    """What :class:`CachedStates` holds, computed afresh for every batch: the embeddings and the
    first ``layer`` layers of the frozen ``encoder`` run (without gradients) each time a batch is
    asked for. The embedding layer runs in training mode, so a noise hook on it
    (:mod:`bert_workbook.noise`) draws new noise for every batch; the layers run in eval mode.
    Use it as the training set of :func:`train_top_layers`; evaluate on clean cached states."""

    def __init__(self, encoder, dataset, tokenizer, layer: int):
        if not 0 <= layer < encoder.config.num_hidden_layers:
            raise ValueError(f"layer must lie in [0, {encoder.config.num_hidden_layers - 1}], got {layer}")
        if len(dataset) == 0 or "label" not in dataset.column_names:
            raise ValueError("dataset must be a non-empty tokenized dataset with a 'label' column")
        self.encoder, self.layer = encoder, layer
        self.pad_id = tokenizer.pad_token_id or 0
        self.ids = [torch.as_tensor(row, dtype=torch.long) for row in dataset["input_ids"]]
        self.labels = torch.as_tensor(list(dataset["label"]), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> torch.Tensor:
        """The number of tokens of each example."""
        return torch.tensor([len(ids) for ids in self.ids])

    @torch.no_grad()
    def batch(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = _padded([self.ids[int(r)] for r in rows], self.pad_id)
        device = next(self.encoder.parameters()).device
        ids, on_device_mask = ids.to(device), mask.to(device)
        self.encoder.eval()
        words = self.encoder.get_input_embeddings()
        words.train()  # noise hooks act in training mode only
        try:
            hidden = self.encoder.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        finally:
            words.eval()
        hidden = _run_layers(self.encoder.encoder.layer[:self.layer], self.encoder.config, hidden, on_device_mask)
        hidden = hidden.float() * on_device_mask[..., None]  # zeros at padding, as CachedStates.batch
        return hidden.cpu(), mask


@torch.no_grad()
def cache_hidden_states(encoder, dataset, tokenizer, layer: int, batch_size: int = 64) -> CachedStates:
    """Run the embeddings and the first ``layer`` layers of ``encoder`` once over a tokenized
    dataset and keep each example's hidden states (real tokens only) for partial fine-tuning.
    Kept on disk like :func:`encode_features` when ``env.cache_dir()`` names a folder."""
    if not 0 <= layer <= encoder.config.num_hidden_layers:
        raise ValueError(f"layer must lie in [0, {encoder.config.num_hidden_layers}], got {layer}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    path = _disk_path("states", encoder, dataset, None, layer, batch_size)
    if path is not None and path.exists():
        return CachedStates(**torch.load(path))
    encoder.eval()
    device = next(encoder.parameters()).device
    loader, unsort = _length_sorted_batches(dataset, tokenizer, batch_size, longest_first=True)
    states = []
    for batch in loader:
        batch.pop("labels", None)
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = encoder(**batch, output_hidden_states=True).hidden_states[layer].float().cpu()
        lengths = batch["attention_mask"].sum(1)
        states += [h[:n].clone() for h, n in zip(hidden, lengths.tolist())]
    states = [states[i] for i in unsort.tolist()]
    env.release_memory()
    labels = (torch.as_tensor(list(dataset["label"]), dtype=torch.long)
              if "label" in dataset.column_names else None)
    cached = CachedStates(states, labels, layer)
    _save(path, {"states": states, "labels": labels, "layer": layer})
    return cached


class TopLayersClassifier(nn.Module):
    """The top layers of an encoder (from ``from_layer`` on) and a classification head, run on
    cached hidden states: ``pooling`` "mean" (over real tokens) or "cls", then dropout and a
    linear layer whose bias starts at ``bias_init`` (e.g. the log class prior)."""

    def __init__(self, encoder, from_layer: int, num_labels: int, pooling: str = "mean",
                 dropout: float = 0.1, bias_init=None):
        super().__init__()
        import copy

        total = encoder.config.num_hidden_layers
        if not 0 <= from_layer < total:
            raise ValueError(f"from_layer must lie in [0, {total - 1}], got {from_layer}")
        if pooling not in HEAD_POOLINGS:
            raise ValueError(f"pooling must be one of {HEAD_POOLINGS}, got {pooling!r}")
        self.config = encoder.config
        self.layers = copy.deepcopy(nn.ModuleList(encoder.encoder.layer[from_layer:]))
        self.pooler = copy.deepcopy(encoder.pooler) if pooling == "pooler" else None
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        if bias_init is not None:
            with torch.no_grad():
                self.classifier.bias.copy_(torch.as_tensor(bias_init, dtype=torch.float32))

    def encode(self, hidden, attention_mask):
        """The top layers' output (batch, tokens, hidden) for cached ``hidden`` states."""
        return _run_layers(self.layers, self.config, hidden, attention_mask)

    def forward(self, hidden, attention_mask):
        pooled = pool_hidden(self.encode(hidden, attention_mask), attention_mask, self.pooling, self)
        return self.classifier(self.dropout(pooled))


@torch.no_grad()
def predict_cached(model: TopLayersClassifier, cached: CachedStates, batch_size: int = 128) -> torch.Tensor:
    """Logits of ``model`` for every example of ``cached`` (eval mode, batches of similar length)."""
    model.eval()
    device = model.classifier.weight.device
    order = np.argsort([len(s) for s in cached.states], kind="stable")
    out = torch.empty(len(cached), model.classifier.out_features)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        hidden, mask = cached.batch(rows)
        out[torch.as_tensor(rows)] = model(hidden.to(device), mask.to(device)).float().cpu()
    return out


def train_top_layers(encoder, train: CachedStates, evaluation: CachedStates, *, steps: int,
                     num_labels: int = 2, batch_size: int = 16, lr: float = 1e-4,
                     weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                     max_grad_norm: float = 1.0, loss_fn: Callable | None = None,
                     balanced_batches: bool = False, pooling: str = "mean", prior_bias: bool = True,
                     seed: int = 0, eval_every: int = 50, progress: bool = False,
                     keep_logits: bool = False, group_by_length: bool = False) -> Run:
    """Partial fine-tuning: a fresh :class:`TopLayersClassifier` on the layers above
    ``train.layer``, trained for ``steps`` mini-batches of cached states (AdamW, linear warm-up and
    decay, clipping) and evaluated every ``eval_every`` steps on ``evaluation``. ``train`` may be
    :class:`LiveStates` (noise hooks on the embeddings). ``keep_logits`` keeps the evaluation
    logits of every evaluation in ``Run.snapshots`` (step -> logits), for early stopping.
    ``group_by_length`` batches examples of similar length together (less padding: faster)."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if train.layer != evaluation.layer:
        raise ValueError(f"train and evaluation states come from different layers "
                         f"({train.layer} and {evaluation.layer})")
    if train.labels is None or evaluation.labels is None:
        raise ValueError("both cached sets need labels")
    y = _as_labels(train.labels, num_labels, "train labels")
    ey = _as_labels(evaluation.labels, num_labels, "evaluation labels")
    if steps < 1 or batch_size < 1 or lr <= 0 or eval_every < 1:
        raise ValueError("steps, batch_size, lr and eval_every must be positive")
    steps = env.training_steps(steps)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = next(encoder.parameters()).device
    model = TopLayersClassifier(encoder, train.layer, num_labels, pooling,
                                bias_init=log_prior_bias(y, num_labels) if prior_bias else None).to(device)
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    rest = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=lr, fused=True)
    warmup = int(warmup_ratio * steps)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, steps)
    loss_fn = loss_fn or nn.functional.cross_entropy
    order = _batch_order(y, steps, batch_size, generator, balanced_batches).view(steps, batch_size)
    if group_by_length:
        order = _group_by_length(order, train.lengths(), generator)
    curve, recent, snapshots = Curve(), [], {}
    for step in tqdm(range(1, steps + 1), desc="partial fine-tuning", disable=not progress):
        model.train()
        hidden, mask = train.batch(order[step - 1])
        loss = loss_fn(model(hidden.to(device), mask.to(device)), y[order[step - 1]].to(device))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        schedule.step()
        recent.append(loss.item())
        if step % eval_every == 0 or step == steps:
            logits = predict_cached(model, evaluation)
            curve.add(step, float(np.mean(recent)), evaluate_logits(logits, ey))
            if keep_logits:
                snapshots[step] = logits
            recent = []
    return Run(logits, evaluate_logits(logits, ey), curve, lambda cached: predict_cached(model, cached),
               snapshots)


# ---------------------------------------------------------------------------------------------
# Intervals over repeated draws


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` draws with a bootstrap ``level`` interval ``[low, high]``."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def bootstrap_interval(values, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> Interval:
    """The mean of ``values`` and its percentile-bootstrap ``level`` interval (resampling the
    values with replacement ``resamples`` times)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError("values must be a non-empty 1-d sequence of numbers")
    if not np.isfinite(v).all():
        raise ValueError("values contain NaN or infinite entries")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if len(v) == 1:
        return Interval(float(v[0]), float("nan"), float("nan"), 1, level)
    rng = np.random.default_rng(seed)
    block = max(1, 2_000_000 // len(v))  # resamples drawn a block at a time: bounded memory, same draws
    means = np.concatenate([v[rng.integers(0, len(v), size=(min(block, resamples - start), len(v)))].mean(1)
                            for start in range(0, resamples, block)])
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(v.mean()), float(low), float(high), len(v), level)


def paired_difference(scores, baseline, **options) -> Interval:
    """``scores - baseline`` draw by draw (same draws, same order), with a bootstrap interval of
    the mean difference: pairing removes the variation that both share (which draw was easy)."""
    a, b = np.asarray(scores, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"scores and baseline must be 1-d and paired draw by draw; got shapes "
                         f"{a.shape} and {b.shape}")
    return bootstrap_interval(a - b, **options)


def compare_to_baseline(table, *, method: str, value: str, draw: str, baseline: str,
                        **options):
    """A DataFrame with one row per method: mean ``value`` over draws, its spread (std), and the
    paired difference from ``baseline`` with its interval. ``table`` has one row per method and
    draw (columns ``method``, ``draw``, ``value``)."""
    import pandas as pd

    for column in (method, value, draw):
        if column not in table.columns:
            raise ValueError(f"table has no column {column!r} (it has {list(table.columns)})")
    wide = table.pivot(index=draw, columns=method, values=value)
    if baseline not in wide.columns:
        raise ValueError(f"baseline {baseline!r} is not among the methods {list(wide.columns)}")
    if wide.isna().any().any():
        raise ValueError("every method needs a score for every draw (paired comparison)")
    rows = []
    for name in dict.fromkeys(table[method]):
        diff = paired_difference(wide[name], wide[baseline], **options)
        rows.append({method: name, "mean": wide[name].mean(), "std": wide[name].std(ddof=1),
                     "vs " + baseline: diff.mean, "low": diff.low, "high": diff.high})
    return pd.DataFrame(rows).set_index(method)


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


def describe_difference(low: float, high: float, matters: float = 0.01, higher_is_better: bool | None = True) -> str:
    """A verdict in words from a difference's interval ``[low, high]``: "better" or "worse"
    ("higher" or "lower" with ``higher_is_better=None``) when the whole interval is on one side of
    0, qualified "by less than ``matters``" when it cannot reach that size; otherwise "no
    detectable difference", or "no difference as large as ``matters``" when the interval rules
    such a difference out."""
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"need a finite interval with low <= high, got [{low}, {high}]")
    up, down = {True: ("better", "worse"), False: ("worse", "better"), None: ("higher", "lower")}[higher_is_better]
    if low > 0:
        return up + (f", by less than {matters:g}" if high < matters else "")
    if high < 0:
        return down + (f", by less than {matters:g}" if low > -matters else "")
    if -matters < low and high < matters:
        return f"no difference as large as {matters:g}"
    return "no detectable difference"
