"""Notebook 06's exercise: focal loss, equal to the reference in value and gradient."""

from __future__ import annotations

from bert_workbook import losses as _losses
from bert_workbook.exercise import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
)


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


def check_focal_loss(fn) -> CheckResult:
    """``fn(logits, target, gamma, alpha, ignore_index, reduction)`` must equal the reference
    :class:`bert_workbook.losses.FocalLoss`: cross-entropy when gamma = 0, per-class alpha
    normalised as ``cross_entropy(weight=alpha)``, ignored targets counted nowhere, ``(N, C)``
    and ``(N, L, C)`` shapes, ``"sum"`` reduction, and gradients that flow."""
    import torch
    import torch.nn.functional as F

    from bert_workbook.losses import FocalLoss

    exercise = "Exercise (focal_loss)"
    hint = ("flatten to (-1, C); log_pt = log_softmax(logits).gather(target); loss = "
            "-(1 - p_t) ** gamma * log_pt, with 1 - p_t = -expm1(log_pt) (and a factor of 0 where that "
            "is exactly 0); weight each target by alpha[target] (1 without "
            "alpha) and by 0 where target == ignore_index; 'mean' divides the weighted sum by the "
            "summed weights, as cross_entropy(weight=...) does.")
    logits, target, tokens, token_target = _focal_cases()
    alpha = [0.2, 1.0, 3.0]
    token_alpha = [0.5, 1.0, 2.0, 4.0]

    def run(*args, **kwargs):
        try:
            out = fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as error:
            return None, f"raised {type(error).__name__}: {error}"
        if not (isinstance(out, torch.Tensor) and out.ndim == 0):
            return None, f"returned {type(out).__name__}{tuple(getattr(out, 'shape', ()))}, not a scalar tensor"
        return out, None

    cases = [
        ("gamma = 0 without alpha must equal F.cross_entropy", (logits, target),
         {"gamma": 0.0}, F.cross_entropy(logits, target)),
        ("gamma = 0 with alpha must equal F.cross_entropy(weight=alpha), which divides by the "
         "summed alpha of the targets, not by their number", (logits, target),
         {"gamma": 0.0, "alpha": alpha}, F.cross_entropy(logits, target, weight=torch.tensor(alpha))),
        ("gamma = 2 must match -(1 - p_t) ** 2 * log p_t", (logits, target), {"gamma": 2.0},
         FocalLoss(2.0)(logits, target)),
        ("gamma = 2 with per-class alpha", (logits, target), {"gamma": 2.0, "alpha": alpha},
         FocalLoss(2.0, alpha)(logits, target)),
        ("token logits (N, L, C) with targets (N, L), where -100 marks targets to skip",
         (tokens, token_target), {"gamma": 1.0, "alpha": token_alpha},
         FocalLoss(1.0, token_alpha)(tokens, token_target)),
        ("reduction='sum' adds the weighted losses", (tokens, token_target),
         {"gamma": 2.0, "reduction": "sum"}, FocalLoss(2.0, reduction="sum")(tokens, token_target)),
    ]
    for what, args, kwargs, expected in cases:
        try:
            out, problem = run(*args, **kwargs)
        except NotImplementedError:
            return CheckResult(exercise, False, "not implemented yet.", "replace the `raise NotImplementedError`.")
        if problem is None and not torch.allclose(out.detach().float(), expected, atol=1e-5, rtol=1e-4):
            problem = f"gave {float(out):.5f}, expected {float(expected):.5f}"
            if "-100" in what and torch.allclose(
                    out.detach().float(), FocalLoss(1.0, token_alpha, ignore_index=-1)(
                        tokens, token_target.clamp_min(0)), atol=1e-5, rtol=1e-4):
                problem += " (targets of -100 were counted)"
        if problem is not None:
            return CheckResult(exercise, False, f"{what}: your function {problem}.", hint)
    def gradient(logits_value, target_value, **kwargs):
        """(loss, gradient w.r.t. the logits, problem) of the learner's function; never raises."""
        leaf = logits_value.clone().requires_grad_(True)
        out, problem = run(leaf, target_value, **kwargs)
        if problem is not None:
            return None, None, problem
        if not out.requires_grad:
            return None, None, ("returned a loss with no gradient (computed outside autograd: "
                                ".item(), numpy, detach, or a new tensor?)")
        try:
            (grad,) = torch.autograd.grad(out, leaf, allow_unused=True)
        except RuntimeError as error:
            return None, None, f"its gradient could not be computed ({error})"
        if grad is None:
            return None, None, ("returned a loss that does not depend on the logits it was given "
                                "(a new tensor built from a number?)")
        return out.detach(), grad, None

    def reference_gradient(logits_value, target_value, gamma, alpha=None):
        leaf = logits_value.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(FocalLoss(gamma, alpha)(leaf, target_value), leaf)
        return grad

    gradient_cases = [
        ("random logits, gamma = 2, per-class alpha", logits, target, 2.0, alpha),
        ("random logits, gamma = 0.5", logits, target, 0.5, None),
        # confident examples: p_t rounds to 1 in float32, where naive formulas give inf or NaN
        ("large margins (logits like [30, 0, 0]), gamma = 0.5",
         torch.tensor([[30.0, 0.0, 0.0], [0.0, 25.0, 0.0], [2.0, 0.0, 1.0]]), torch.tensor([0, 1, 2]), 0.5, None),
        ("large margins, gamma = 2", torch.tensor([[30.0, 0.0, 0.0], [0.0, -40.0, 0.0]]),
         torch.tensor([0, 0]), 2.0, None),
        ("a very wrong example (logits [0, 60, 0], true class 0), gamma = 2",
         torch.tensor([[0.0, 60.0, 0.0]]), torch.tensor([0]), 2.0, None),
    ]
    for what, case_logits, case_target, gamma, case_alpha in gradient_cases:
        try:
            out, grad, problem = gradient(case_logits, case_target, gamma=gamma, alpha=case_alpha)
        except NotImplementedError:
            return CheckResult(exercise, False, "not implemented yet.", "replace the `raise NotImplementedError`.")
        if problem is not None:
            return CheckResult(exercise, False, f"gradient test ({what}): your function {problem}.", hint)
        if not (torch.isfinite(out).all() and torch.isfinite(grad).all()):
            return CheckResult(exercise, False, f"{what}: your loss or its gradient is inf or NaN. "
                               "Compute log p_t with log_softmax (log(softmax(x)) is log(0) = -inf "
                               "for a very wrong example), and 1 - p_t as -expm1(log_pt): 1 - exp(log_pt) "
                               "rounds to exactly 0 for a confident one, where 0 ** gamma has an infinite "
                               "slope when gamma < 1.", hint)
        expected_loss = FocalLoss(gamma, case_alpha)(case_logits, case_target)
        expected_grad = reference_gradient(case_logits, case_target, gamma, case_alpha)
        if not torch.allclose(out.float(), expected_loss, atol=1e-5, rtol=1e-4):
            return CheckResult(exercise, False, f"{what}: your function gave {float(out):.5g}, expected "
                               f"{float(expected_loss):.5g}.", hint)
        if not torch.allclose(grad.float(), expected_grad, atol=1e-5, rtol=1e-3):
            detached = torch.allclose(grad.float(), _focal_detached_gradient(case_logits, case_target, gamma,
                                                                             case_alpha), atol=1e-5, rtol=1e-3)
            reason = ("the modulating factor (1 - p_t) ** gamma was detached (or computed outside "
                      "autograd), so its own gradient is missing" if detached else
                      f"its largest difference from the reference's is {float((grad - expected_grad).abs().max()):.2e}")
            return CheckResult(exercise, False, f"{what}: the loss is right but its gradient is not: "
                               f"{reason}. The factor must stay in the graph: it is what turns easy "
                               "examples down during training.", hint)
    easy = torch.tensor([[4.0, 0.0, 0.0]])
    grads = [float(reference_gradient(easy, torch.tensor([0]), gamma).abs().sum()) for gamma in (0.0, 1.0, 2.0)]
    shrink = ", ".join(f"{g:.2g}" for g in grads)
    return CheckResult(exercise, True, f"equals cross-entropy at gamma = 0 (with and without alpha), "
                       f"the reference at gamma = 1 and 2, skips -100 targets, handles token shapes "
                       f"and 'sum'; its gradients equal the reference's, also at large margins and "
                       f"gamma = 0.5; an easy example's gradient at gamma 0, 1, 2: {shrink}.")


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
    name="Exercise (focal_loss)",
    checker=check_focal_loss,
    hints=(
        "Start from cross-entropy per example, -log p_t, where p_t is the probability of the true "
        "class; focal loss multiplies it by (1 - p_t) ** gamma.",
        "Compute log p_t with log_softmax and gather (never log(softmax(x))), and 1 - p_t as "
        "-expm1(log_pt), so that confident and very wrong examples stay finite.",
        "Weight each example by alpha[target] (1 without alpha) and by 0 where target == "
        "ignore_index; 'mean' divides the weighted sum by the summed weights, as "
        "cross_entropy(weight=...) does.",
    ),
    reference=_losses.focal_loss,
)
