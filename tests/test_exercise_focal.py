"""Notebook 06's check: each usual mistake of a focal loss, written out here on its own, gets its
own name (and no other mistake's); right answers written in other ways pass. Its very wrong
example really underflows log(softmax) in float32."""

import pytest
import torch
import torch.nn.functional as F

from bert_workbook.exercises import ex06


def _flat(logits, target):
    return logits.reshape(-1, logits.shape[-1]), target.reshape(-1)


def _reduce(loss, weight, reduction):
    return (loss * weight).sum() if reduction == "sum" else (loss * weight).sum() / weight.sum()


def _weights(target, alpha, ignore_index, dtype):
    counted = target != ignore_index
    weight = counted.to(dtype)
    if alpha is not None:
        weight = weight * torch.as_tensor(alpha, dtype=dtype)[torch.where(counted, target, 0)]
    return weight


def _safe_factor(log_pt, gamma):
    one_minus = -torch.expm1(log_pt)
    positive = one_minus > 0
    base = torch.where(positive, one_minus, torch.ones_like(one_minus))
    return torch.where(positive, base ** gamma, torch.zeros_like(base)) if gamma else torch.ones_like(log_pt)


def focal(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """Right: the mistakes below change one thing of it."""
    logits, target = _flat(logits, target)
    safe = torch.where(target != ignore_index, target, 0)
    log_pt = logits.log_softmax(-1).gather(1, safe[:, None]).squeeze(1)
    return _reduce(-_safe_factor(log_pt, gamma) * log_pt, _weights(target, alpha, ignore_index, logits.dtype), reduction)


def divides_by_the_number_of_targets(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    logits, target = _flat(logits, target)
    weight = _weights(target, alpha, ignore_index, logits.dtype)
    safe = torch.where(target != ignore_index, target, 0)
    log_pt = logits.log_softmax(-1).gather(1, safe[:, None]).squeeze(1)
    loss = (-_safe_factor(log_pt, gamma) * log_pt * weight).sum()
    return loss if reduction == "sum" else loss / (target != ignore_index).sum()


def counts_ignored_targets(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    logits, target = _flat(logits, target)
    target = target.clamp_min(0)
    log_pt = logits.log_softmax(-1).gather(1, target[:, None]).squeeze(1)
    return _reduce(-_safe_factor(log_pt, gamma) * log_pt, _weights(target, alpha, -100, logits.dtype), reduction)


def fixed_ignore_index(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    return focal(logits, target, gamma, alpha, -100, reduction)


def ignores_gamma(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    return focal(logits, target, 0.0, alpha, ignore_index, reduction)


def always_the_mean(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    return focal(logits, target, gamma, alpha, ignore_index, "mean")


def log_of_softmax(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    logits, target = _flat(logits, target)
    safe = torch.where(target != ignore_index, target, 0)
    p = logits.softmax(-1).gather(1, safe[:, None]).squeeze(1)
    return _reduce(-_safe_factor(torch.log(p), gamma) * torch.log(p),
                   _weights(target, alpha, ignore_index, logits.dtype), reduction)


def one_minus_exp(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    logits, target = _flat(logits, target)
    safe = torch.where(target != ignore_index, target, 0)
    log_pt = logits.log_softmax(-1).gather(1, safe[:, None]).squeeze(1)
    return _reduce(-(1 - log_pt.exp()) ** gamma * log_pt, _weights(target, alpha, ignore_index, logits.dtype), reduction)


def detached_factor(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    logits, target = _flat(logits, target)
    safe = torch.where(target != ignore_index, target, 0)
    log_pt = logits.log_softmax(-1).gather(1, safe[:, None]).squeeze(1)
    factor = _safe_factor(log_pt, gamma).detach()
    return _reduce(-factor * log_pt, _weights(target, alpha, ignore_index, logits.dtype), reduction)


def detached_logits(logits, target, **options):
    return focal(logits.detach(), target, **options)


def rebuilt_from_a_number(logits, target, **options):
    return torch.tensor(focal(logits, target, **options).item(), requires_grad=True)


def zeroes_ignored_targets_in_place(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    counted = target != ignore_index
    target[~counted] = 0  # the caller's target is changed
    logits, flat = _flat(logits, target)
    log_pt = logits.log_softmax(-1).gather(1, flat[:, None]).squeeze(1)
    weight = counted.reshape(-1).to(logits.dtype)
    if alpha is not None:
        weight = weight * torch.as_tensor(alpha)[flat]
    return _reduce(-_safe_factor(log_pt, gamma) * log_pt, weight, reduction)


def a_python_float(logits, target, **options):
    return focal(logits, target, **options).item()


FOCAL_MISTAKES = {
    divides_by_the_number_of_targets: "summed alpha of the targets, not by their number",
    counts_ignored_targets: "targets of -100 were counted",
    fixed_ignore_index: "use the ignore_index argument, not a fixed -100",
    ignores_gamma: "gamma = 2 must match",
    always_the_mean: "reduction='sum'",
    log_of_softmax: "p_t underflows to 0 in float32 and your loss is inf or NaN",
    one_minus_exp: "p_t rounds to 1 and your gradient is inf or NaN",
    detached_factor: "the modulating factor (1 - p_t) ** gamma was detached",
    detached_logits: "returned a loss with no gradient",
    rebuilt_from_a_number: "does not depend on the logits",
    zeroes_ignored_targets_in_place: "changed `target` in place",
    a_python_float: "not a scalar tensor",
}


@pytest.mark.parametrize("mistake", FOCAL_MISTAKES, ids=lambda f: f.__name__)
def test_focal_loss_names_each_mistake_and_only_it(mistake):
    result = ex06.focal_loss.check(mistake)
    assert not result.passed
    assert FOCAL_MISTAKES[mistake] in result.message, result
    others = [words for other, words in FOCAL_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def test_the_very_wrong_example_underflows_log_of_softmax_in_float32():
    """A margin of 60 (the old case) does not underflow; the check's 120 does."""
    assert torch.isfinite(torch.log(torch.tensor([0.0, 60.0, 0.0]).softmax(-1)[0]))
    assert torch.isinf(torch.log(torch.tensor([0.0, 120.0, 0.0]).softmax(-1)[0]))


def in_float64_with_cross_entropy(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """Right, written another way: -log p_t from cross_entropy(reduction='none'), in float64."""
    logits, target = _flat(logits.double(), target)
    counted = target != ignore_index
    log_pt = -F.cross_entropy(logits, torch.where(counted, target, 0), reduction="none")
    loss = -_safe_factor(log_pt, gamma) * log_pt
    weight = counted.double() * (1.0 if alpha is None else torch.tensor(alpha, dtype=torch.float64)[torch.where(counted, target, 0)])
    return loss.mul(weight).sum() if reduction == "sum" else loss.mul(weight).sum() / weight.sum()


@pytest.mark.parametrize("answer", [ex06.focal_loss.reference, focal, in_float64_with_cross_entropy])
def test_focal_loss_passes_right_answers_written_differently(answer):
    result = ex06.focal_loss.check(answer)
    assert result.passed, result
