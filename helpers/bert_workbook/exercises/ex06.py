"""Notebook 06's exercise: focal loss, equal to the reference in value and gradient."""

from __future__ import annotations

from bert_workbook import losses as _losses
from bert_workbook.exercises.core import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    call_or_verdict,
    nudge,
)

FOCAL_NAME = "Exercise (focal_loss)"
HINT_FOCAL = nudge("ex06.focal_loss")


def _focal_cases():
    """Inputs for ``check_focal_loss``: random logits of both shapes, a few ignored targets."""
    import torch

    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    logits = torch.randn(12, 3, generator=generator) * 2
    target = torch.randint(3, (12,), generator=generator)
    tokens = torch.randn(3, 5, 4, generator=generator) * 2
    token_target = torch.randint(4, (3, 5), generator=generator)
    token_target[0, 0], token_target[1, 3], token_target[2, 4] = -100, -100, -100
    return logits, target, tokens, token_target


def _value_cases():
    """(what the case tests, args, kwargs, expected loss, a named mistake's loss or None)."""
    import torch
    import torch.nn.functional as F

    from bert_workbook.losses import FocalLoss

    logits, target, tokens, token_target = _focal_cases()
    alpha, token_alpha = [0.2, 1.0, 3.0], [0.5, 1.0, 2.0, 4.0]
    other_ignored = torch.where(token_target == -100, torch.full_like(token_target, -1), token_target)
    return [
        ("gamma = 0 without alpha must equal F.cross_entropy", (logits, target),
         {"gamma": 0.0}, F.cross_entropy(logits, target), None),
        ("gamma = 0 with alpha must equal F.cross_entropy(weight=alpha), which divides by the "
         "summed alpha of the targets, not by their number", (logits, target),
         {"gamma": 0.0, "alpha": alpha}, F.cross_entropy(logits, target, weight=torch.tensor(alpha)), None),
        ("gamma = 2 must match -(1 - p_t) ** 2 * log p_t", (logits, target), {"gamma": 2.0},
         FocalLoss(2.0)(logits, target), None),
        ("gamma = 2 with per-class alpha", (logits, target), {"gamma": 2.0, "alpha": alpha},
         FocalLoss(2.0, alpha)(logits, target), None),
        ("token logits (N, L, C) with targets (N, L), where -100 marks targets to skip",
         (tokens, token_target), {"gamma": 1.0, "alpha": token_alpha},
         FocalLoss(1.0, token_alpha)(tokens, token_target),
         ("targets of -100 were counted", FocalLoss(1.0, token_alpha, ignore_index=-1)(tokens, token_target.clamp_min(0)))),
        ("with ignore_index=-1, the targets equal to -1 must count nowhere: use the ignore_index "
         "argument, not a fixed -100", (tokens, other_ignored), {"gamma": 1.0, "ignore_index": -1},
         FocalLoss(1.0, ignore_index=-1)(tokens, other_ignored), None),
        ("reduction='sum' adds the weighted losses", (tokens, token_target),
         {"gamma": 2.0, "reduction": "sum"}, FocalLoss(2.0, reduction="sum")(tokens, token_target), None),
    ]


def _run(fn, what, *args, **kwargs):
    """``(loss, None)`` for a scalar floating-point tensor from ``fn``, else ``(None, failing verdict)``."""
    import torch

    out, failed = call_or_verdict(FOCAL_NAME, fn, *args, **kwargs)
    if failed is not None:
        if failed.message.startswith("not implemented"):
            return None, failed
        return None, CheckResult(FOCAL_NAME, False, f"{what}: {failed.message}", HINT_FOCAL)
    if not (isinstance(out, torch.Tensor) and out.ndim == 0 and out.is_floating_point()):
        kind = f"{type(out).__name__}{tuple(getattr(out, 'shape', ()))}"
        return None, CheckResult(FOCAL_NAME, False, f"{what}: your function returned {kind}"
                                 + (f" of {out.dtype}" if isinstance(out, torch.Tensor) else "")
                                 + ", not a scalar tensor of real numbers.", HINT_FOCAL)
    return out, None


def _close(a, b, rtol=1e-4) -> bool:
    import torch

    return torch.allclose(a.detach().float(), b.detach().float(), atol=1e-5, rtol=rtol)


_VERY_WRONG = ("p_t underflows to 0 in float32 and your loss is inf or NaN: log(softmax(x)) is "
               "log(0) = -inf there, where log_softmax stays finite")
_CONFIDENT = ("p_t rounds to 1 and your gradient is inf or NaN: 1 - p_t is exactly 0 there, and "
              "(1 - p_t) ** gamma has an infinite slope at 0 when gamma < 1")


def _gradient_cases():
    """(what, logits, target, gamma, alpha, what an inf or NaN there means)."""
    import torch

    logits, target, _, _ = _focal_cases()
    return [
        ("random logits, gamma = 2, per-class alpha", logits, target, 2.0, [0.2, 1.0, 3.0], None),
        ("random logits, gamma = 0.5", logits, target, 0.5, None, None),
        ("a very wrong example (logits [0, 120, 0], true class 0), gamma = 2",
         torch.tensor([[0.0, 120.0, 0.0], [1.0, 0.0, -1.0]]), torch.tensor([0, 2]), 2.0, None, _VERY_WRONG),
        ("large margins (logits like [30, 0, 0]), gamma = 0.5",
         torch.tensor([[30.0, 0.0, 0.0], [0.0, 25.0, 0.0], [2.0, 0.0, 1.0]]), torch.tensor([0, 1, 2]), 0.5, None,
         _CONFIDENT),
        ("large margins, gamma = 2", torch.tensor([[30.0, 0.0, 0.0], [0.0, -40.0, 0.0]]),
         torch.tensor([0, 0]), 2.0, None, _CONFIDENT),
    ]


def _gradient_verdict(fn, what, logits, target, gamma, alpha, meaning) -> CheckResult | None:
    """A failing verdict unless ``fn``'s loss and its gradient on this case equal the reference's."""
    import torch

    from bert_workbook.losses import FocalLoss

    leaf = logits.clone().requires_grad_(True)
    out, failed = _run(fn, f"gradient test ({what})", leaf, target, gamma=gamma, alpha=alpha)
    if failed is not None:
        return failed
    if not out.requires_grad:
        return CheckResult(FOCAL_NAME, False, f"gradient test ({what}): your function returned a loss with no "
                           "gradient (computed outside autograd: .item(), numpy, detach, or a new tensor?).", HINT_FOCAL)
    try:
        (grad,) = torch.autograd.grad(out, leaf, allow_unused=True)
    except RuntimeError as error:
        return CheckResult(FOCAL_NAME, False, f"gradient test ({what}): its gradient could not be computed "
                           f"({error}).", HINT_FOCAL)
    if grad is None:
        return CheckResult(FOCAL_NAME, False, f"gradient test ({what}): your function returned a loss that does "
                           "not depend on the logits it was given (a new tensor built from a number?).", HINT_FOCAL)
    if not torch.isfinite(out).all():
        reason = meaning if meaning is _VERY_WRONG else "your loss is inf or NaN"
        return CheckResult(FOCAL_NAME, False, f"{what}: {reason}.", HINT_FOCAL)
    if not torch.isfinite(grad).all():
        reason = meaning if meaning is _CONFIDENT else "its gradient is inf or NaN"
        return CheckResult(FOCAL_NAME, False, f"{what}: {reason}.", HINT_FOCAL)
    reference_leaf = logits.clone().requires_grad_(True)
    expected = FocalLoss(gamma, alpha)(reference_leaf, target)
    (expected_grad,) = torch.autograd.grad(expected, reference_leaf)
    if not _close(out, expected):
        return CheckResult(FOCAL_NAME, False, f"{what}: your function gave {float(out):.5g}, expected "
                           f"{float(expected):.5g}.", HINT_FOCAL)
    if not _close(grad, expected_grad, rtol=1e-3):
        detached = _close(grad, _focal_detached_gradient(logits, target, gamma, alpha), rtol=1e-3)
        reason = ("the modulating factor (1 - p_t) ** gamma was detached (or computed outside "
                  "autograd), so its own gradient is missing; it must stay in the graph, since it is "
                  "what turns easy examples down" if detached else
                  f"its largest difference from the reference's is {float((grad - expected_grad).abs().max()):.2e}")
        return CheckResult(FOCAL_NAME, False, f"{what}: the loss is right but its gradient is not: {reason}.",
                           HINT_FOCAL)
    return None


def check_focal_loss(fn) -> CheckResult:
    """``fn(logits, target, gamma, alpha, ignore_index, reduction)`` must equal the reference
    :class:`bert_workbook.losses.FocalLoss`: cross-entropy when gamma = 0, per-class alpha
    normalised as ``cross_entropy(weight=alpha)``, ignored targets (-100, or the ignore_index
    given) counted nowhere, ``(N, C)`` and ``(N, L, C)`` shapes, ``"sum"`` reduction, gradients
    equal to the reference's, finite where p_t underflows or rounds to 1; and leave its inputs
    as they were."""
    import torch

    from bert_workbook.losses import FocalLoss

    for what, args, kwargs, expected, mistake in _value_cases():
        out, failed = _run(fn, what, *args, **kwargs)
        if failed is not None:
            return failed
        if not _close(out, expected):
            problem = f"gave {float(out):.5f}, expected {float(expected):.5f}"
            if mistake is not None and _close(out, mistake[1]):
                problem += f" ({mistake[0]})"
            return CheckResult(FOCAL_NAME, False, f"{what}: your function {problem}.", HINT_FOCAL)
    for case in _gradient_cases():
        failed = _gradient_verdict(fn, *case)
        if failed is not None:
            return failed
    easy = torch.tensor([[4.0, 0.0, 0.0]], requires_grad=True)
    grads = [float(torch.autograd.grad(FocalLoss(gamma)(easy, torch.tensor([0])), easy)[0].abs().sum())
             for gamma in (0.0, 1.0, 2.0)]
    shrink = ", ".join(f"{g:.2g}" for g in grads)
    return CheckResult(FOCAL_NAME, True, f"equals cross-entropy at gamma = 0 (with and without alpha), "
                       f"the reference at gamma = 1 and 2, skips -100 targets (and any ignore_index), handles "
                       f"token shapes and 'sum'; its gradients equal the reference's, also for a very wrong example "
                       f"and at large margins with gamma = 0.5; an easy example's gradient at gamma 0, 1, 2: {shrink}.")


def _focal_detached_gradient(logits, target, gamma, alpha):
    """The gradient of a focal loss whose modulating factor is detached (a classic slip)."""
    import torch

    from bert_workbook.losses import focal_factor

    leaf = logits.clone().requires_grad_(True)
    log_pt = leaf.log_softmax(-1).gather(1, target[:, None]).squeeze(1)
    weight = torch.ones_like(log_pt) if alpha is None else torch.as_tensor(alpha)[target]
    loss = (-focal_factor(log_pt, gamma).detach() * log_pt * weight).sum() / weight.sum()
    (grad,) = torch.autograd.grad(loss, leaf)
    return grad


focal_loss = Exercise(
    name=FOCAL_NAME,
    checker=check_focal_loss,
    hints=(
        "Start from cross-entropy per example, -log p_t, where p_t is the probability of the true "
        "class; focal loss multiplies it by (1 - p_t) ** gamma.",
        "Compute log p_t with log_softmax and gather (never log(softmax(x)), which is log(0) for a "
        "very wrong example), and 1 - p_t as -expm1(log_pt). Where 1 - p_t is still exactly 0 (a "
        "very confident example), use a factor of 0 without taking the power: 0 ** gamma has an "
        "infinite slope when gamma < 1.",
        "Weight each example by alpha[target] (1 without alpha) and by 0 where target == "
        "ignore_index (the argument, not a fixed -100); 'mean' divides the weighted sum by the summed "
        "weights, as cross_entropy(weight=...) does. Never change target in place.",
    ),
    reference=_losses.focal_loss,
    solution_code='''
def focal_loss(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """-alpha[y] * (1 - p_t) ** gamma * log p_t, averaged like F.cross_entropy(weight=alpha)."""
    num_classes = logits.shape[-1]
    logits, target = logits.reshape(-1, num_classes), target.reshape(-1)
    counted = target != ignore_index
    safe_target = torch.where(counted, target, torch.zeros_like(target))  # any valid class
    log_pt = logits.log_softmax(-1).gather(1, safe_target[:, None]).squeeze(1)
    one_minus_pt = -torch.expm1(log_pt)  # 1 - p_t without rounding to 0
    positive = one_minus_pt > 0
    base = torch.where(positive, one_minus_pt, torch.ones_like(one_minus_pt))
    factor = torch.where(positive, base ** gamma, torch.zeros_like(base))
    weight = counted.to(logits.dtype)
    if alpha is not None:
        weight = weight * torch.as_tensor(alpha, dtype=logits.dtype)[safe_target]
    loss = (-factor * log_pt * weight).sum()
    return loss if reduction == "sum" else loss / weight.sum()
''',
)
