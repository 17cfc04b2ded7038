"""Focal loss (Lin et al., 2017) for sequence and token classification, done carefully:
per-class alpha, ``ignore_index``, and the same normalisation as ``cross_entropy``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

REDUCTIONS = ("mean", "sum", "none")


def focal_factor(log_pt: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(1 - p_t) ** gamma`` from ``log p_t``, finite with a finite gradient at any margin.

    ``1 - exp(log_pt)`` rounds to exactly 0 once ``p_t`` is within float precision of 1 (a margin
    of about 17 in float32), and ``0 ** gamma`` has an infinite slope for ``0 < gamma < 1``: one
    confident example then makes the whole batch's gradient NaN. ``-expm1(log_pt)`` keeps the
    tiny difference, and where it is still exactly 0 the factor is set to 0 with no gradient
    through the power (the "double where": the power never sees a 0)."""
    if gamma == 0:
        return torch.ones_like(log_pt)
    one_minus = -torch.expm1(log_pt)
    positive = one_minus > 0
    safe = torch.where(positive, one_minus, torch.ones_like(one_minus))
    return torch.where(positive, safe ** gamma, torch.zeros_like(one_minus))


class FocalLoss(nn.Module):
    """``-alpha[y] * (1 - p_y) ** gamma * log p_y``: cross-entropy whose easy examples (high
    ``p_y``) are turned down by the factor ``(1 - p_y) ** gamma``.

    * ``gamma`` >= 0; with ``gamma = 0`` and no ``alpha`` this is exactly ``cross_entropy``.
    * ``alpha``: one non-negative weight per class (not one scalar for all classes, which only
      rescales the loss), or ``None``.
    * Targets equal to ``ignore_index`` (-100: padding, or sub-word pieces in NER) count nowhere.
    * ``reduction="mean"`` divides by the summed alpha of the counted targets (by their number
      without alpha), as ``cross_entropy(weight=alpha)`` does; ``"none"`` returns one loss per
      target (0 where ignored).
    * Logits ``(N, C)`` with targets ``(N,)``, or ``(N, L, C)`` with ``(N, L)``: classes last, as
      Hugging Face token classifiers return them (``class_dim=-1``). For PyTorch's own layout,
      ``(N, C, L)`` as ``cross_entropy`` takes it, say ``class_dim=1``: the shapes alone cannot
      tell the two apart when ``L == C``.
    """

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | torch.Tensor | None = None,
                 ignore_index: int = -100, reduction: str = "mean", class_dim: int = -1):
        super().__init__()
        if class_dim not in (-1, 1):
            raise ValueError(f"class_dim must be -1 (classes last) or 1 (classes second, as "
                             f"cross_entropy takes them), got {class_dim!r}")
        self.class_dim = class_dim
        if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if alpha is not None:
            if isinstance(alpha, (int, float)):
                raise ValueError("alpha must hold one weight per class (a list or 1-d tensor), not "
                                 "a single number: one number for every class only rescales the loss")
            alpha = torch.as_tensor(alpha, dtype=torch.float32)
            if alpha.ndim != 1 or len(alpha) < 2 or not torch.isfinite(alpha).all() or (alpha < 0).any():
                raise ValueError(f"alpha must be a 1-d sequence of >= 2 finite weights >= 0, got {alpha.tolist()}")
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = None
        self.gamma = float(gamma)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"targets must be class indices (torch.long), got {target.dtype}: for one-hot or "
                            "soft targets take argmax(-1) first")
        if logits.ndim == 3 and self.class_dim == 1:
            logits = logits.transpose(1, 2)  # (N, C, L) -> (N, L, C)
        if logits.ndim not in (2, 3) or target.shape != logits.shape[:-1]:
            layout = "(N, C, L) with (N, L), class_dim=1" if self.class_dim == 1 else "(N, L, C) with (N, L)"
            hint = ""
            if self.class_dim == -1 and logits.ndim == 3 and target.shape == (logits.shape[0], logits.shape[2]):
                hint = ": these look like (N, C, L) logits, classes second; pass class_dim=1"
            raise ValueError(f"expected logits (N, C) with targets (N,), or {layout}; got logits "
                             f"{tuple(logits.shape)} and targets {tuple(target.shape)}{hint}")
        num_classes = logits.shape[-1]
        if self.alpha is not None and len(self.alpha) != num_classes:
            raise ValueError(f"alpha has {len(self.alpha)} weights but the logits have {num_classes} classes")
        flat_logits, flat_target = logits.reshape(-1, num_classes), target.reshape(-1)
        counted = flat_target != self.ignore_index
        bad = flat_target[counted & ((flat_target < 0) | (flat_target >= num_classes))]
        if len(bad):
            raise ValueError(f"targets must lie in [0, {num_classes}) or equal ignore_index "
                             f"({self.ignore_index}); found {sorted(set(bad.tolist()))[:5]}")
        safe_target = torch.where(counted, flat_target, torch.zeros_like(flat_target))
        log_p = torch.log_softmax(flat_logits.float(), dim=-1)
        log_pt = log_p.gather(1, safe_target[:, None]).squeeze(1)
        loss = -focal_factor(log_pt, self.gamma) * log_pt
        weight = self.alpha.to(loss.device)[safe_target] if self.alpha is not None else torch.ones_like(loss)
        weight = weight * counted
        loss = loss * weight
        if self.reduction == "none":
            return loss.reshape(target.shape)
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / weight.sum().clamp_min(torch.finfo(loss.dtype).tiny)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               alpha: Sequence[float] | torch.Tensor | None = None, ignore_index: int = -100,
               reduction: str = "mean", class_dim: int = -1) -> torch.Tensor:
    """The function form of :class:`FocalLoss` (same arguments, same checks)."""
    return FocalLoss(gamma, alpha, ignore_index, reduction, class_dim)(logits, target)
