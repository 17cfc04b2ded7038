"""Pieces the measurement modules share: input checks and class priors."""

from __future__ import annotations

import torch

from bert_workbook.training import check_labels


def _as_labels(labels, num_labels: int | None = None, name: str = "labels") -> torch.Tensor:
    """Labels as a 1-d int64 tensor, checked by ``training.check_labels`` (against ``num_labels``
    when given)."""
    return torch.as_tensor(check_labels(labels, num_labels, name), dtype=torch.long)


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
