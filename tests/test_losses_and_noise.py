import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_workbook import losses
from bert_workbook.exercises import ex06
from bert_workbook.losses import FocalLoss
from bert_workbook.noise import add_frequent_token_noise, add_neftune_noise


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), c=st.integers(2, 6), seed=st.integers(0, 1000))
def test_focal_loss_with_gamma_0_is_cross_entropy(n, c, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 3
    target = torch.randint(0, c, (n,), generator=g)
    torch.testing.assert_close(FocalLoss(gamma=0)(logits, target), F.cross_entropy(logits, target))
    weight = torch.rand(c, generator=g) + 0.1
    torch.testing.assert_close(FocalLoss(gamma=0, alpha=weight)(logits, target),
                               F.cross_entropy(logits, target, weight=weight))
    uniform = FocalLoss(gamma=0, alpha=[1.0] * c)(logits, target)
    torch.testing.assert_close(uniform, F.cross_entropy(logits, target))


def test_focal_loss_on_hand_picked_logits():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(9.0), 0.0]])  # p(target) = 0.75, 0.9
    target = torch.tensor([1, 0])
    expected = [-(0.25 ** 2) * math.log(0.75), -(0.1 ** 2) * math.log(0.9)]
    each = FocalLoss(gamma=2, reduction="none")(logits, target)
    torch.testing.assert_close(each, torch.tensor(expected))
    torch.testing.assert_close(FocalLoss(gamma=2, reduction="sum")(logits, target), each.sum())
    weighted = FocalLoss(gamma=2, alpha=[0.25, 0.75])(logits, target)
    torch.testing.assert_close(weighted, (0.75 * each[0] + 0.25 * each[1]) / (0.75 + 0.25))


def test_easy_examples_lose_gradient_as_gamma_grows():
    sizes = []
    for gamma in (0, 1, 2, 5):
        logits = torch.tensor([[3.0, 0.0]], requires_grad=True)  # easy: p(target) = 0.95
        FocalLoss(gamma=gamma)(logits, torch.tensor([0])).backward()
        sizes.append(logits.grad.abs().sum().item())
    assert all(a > b for a, b in zip(sizes, sizes[1:])) and sizes[-1] < 1e-4 * sizes[0]


def test_ignore_index_and_token_shapes():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, generator=g)
    target = torch.tensor([[0, -100, 2, 1, -100], [1, 1, -100, 0, 2]])
    for gamma in (0, 2):
        loss = FocalLoss(gamma=gamma)
        flat = loss(logits.reshape(-1, 3), target.reshape(-1))
        torch.testing.assert_close(loss(logits, target), flat)
        kept = target.reshape(-1) != -100
        torch.testing.assert_close(flat, loss(logits.reshape(-1, 3)[kept], target.reshape(-1)[kept]))
    torch.testing.assert_close(FocalLoss(gamma=0)(logits, target),
                               F.cross_entropy(logits.reshape(-1, 3), target.reshape(-1)))
    none = FocalLoss(reduction="none")(logits, target)
    assert none.shape == target.shape and (none[target == -100] == 0).all()
    assert FocalLoss()(logits, torch.full((2, 5), -100)).item() == 0.0


def test_focal_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="one weight per class"):
        FocalLoss(alpha=0.25)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="reduction"):
        FocalLoss(reduction="avg")
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=[1.0, -1.0])
    with pytest.raises(ValueError, match="3 classes"):
        FocalLoss(alpha=[1.0, 2.0])(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        FocalLoss()(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="expected logits"):
        FocalLoss()(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))


def _embedding():
    torch.manual_seed(0)
    return torch.nn.Embedding(50, 8)


def test_frequent_token_noise_touches_only_listed_ids_in_training_and_never_the_weights():
    embedding = _embedding()
    before = embedding.weight.detach().clone()
    ids = torch.tensor([[1, 2, 3, 2, 7]])
    clean = embedding(ids).detach()
    handle = add_frequent_token_noise(embedding, [2, 7], std=0.5, generator=torch.Generator().manual_seed(0))
    noisy = embedding(ids)
    changed = (noisy != clean).any(-1)[0].tolist()
    assert changed == [False, True, False, True, True]
    assert torch.equal(embedding.weight, before)
    embedding.eval()
    assert torch.equal(embedding(ids), clean)
    embedding.train()
    handle.remove()
    assert torch.equal(embedding(ids), clean)


def test_neftune_noise_has_the_documented_scale_and_is_off_in_eval():
    embedding = _embedding()
    ids = torch.randint(0, 50, (4, 16))
    clean = embedding(ids).detach()
    add_neftune_noise(embedding, alpha=5.0, generator=torch.Generator().manual_seed(0))
    noise = embedding(ids).detach() - clean
    bound = 5.0 / math.sqrt(16 * 8)
    assert noise.abs().max() <= bound + 1e-6 and noise.abs().max() > 0.9 * bound
    assert abs(noise.mean().item()) < 0.1 * bound
    embedding.eval()
    assert torch.equal(embedding(ids), clean)


def test_noise_hooks_reject_bad_arguments():
    embedding = _embedding()
    with pytest.raises(TypeError, match="nn.Embedding"):
        add_neftune_noise(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="alpha"):
        add_neftune_noise(embedding, alpha=0)
    with pytest.raises(ValueError, match="std"):
        add_frequent_token_noise(embedding, [1], std=-0.1)
    with pytest.raises(ValueError, match="non-empty"):
        add_frequent_token_noise(embedding, [], std=0.1)
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        add_frequent_token_noise(embedding, [50], std=0.1)


# --- the focal-loss exercise check -----------------------------------------------------------

def reference_focal(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    return FocalLoss(gamma, alpha, ignore_index, reduction)(logits, target)


def unweighted_mean(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """alpha applied, but the mean taken over the number of targets (not their summed alpha)."""
    loss = FocalLoss(gamma, alpha, ignore_index, reduction="none")(logits, target)
    return loss.sum() if reduction == "sum" else loss.sum() / (target != ignore_index).sum()


def counts_ignored(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    return FocalLoss(gamma, alpha, ignore_index=-1, reduction=reduction)(logits, target.clamp_min(0))


def no_gamma(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    return FocalLoss(0.0, alpha, ignore_index, reduction)(logits, target)


def detached(logits, target, **kwargs):
    return reference_focal(logits.detach(), target, **kwargs)


def only_2d(logits, target, **kwargs):
    if logits.ndim != 2:
        raise IndexError("too many indices for tensor")
    return reference_focal(logits, target, **kwargs)


def test_focal_check_passes_on_the_reference():
    result = ex06.check_focal_loss(reference_focal)
    assert result.passed, result
    assert "gamma 0, 1, 2" in result.message


@pytest.mark.parametrize("wrong, says", [
    (lambda *a, **k: (_ for _ in ()).throw(NotImplementedError), "not implemented"),
    (unweighted_mean, "summed alpha"),
    (counts_ignored, "-100 were counted"),
    (no_gamma, "gamma = 2"),
    (detached, "no gradient"),
    (only_2d, "IndexError"),
    (lambda logits, target, **k: float(reference_focal(logits, target, **k)), "not a scalar tensor"),
])
def test_focal_check_names_the_mistake(wrong, says):
    result = ex06.check_focal_loss(wrong)
    assert not result.passed
    assert says in str(result), str(result)


def _reduce(loss, target, alpha, ignore_index, reduction):
    weight = (target != ignore_index).float()
    if alpha is not None:
        weight = weight * torch.as_tensor(alpha)[target.clamp_min(0)]
    return (loss * weight).sum() if reduction == "sum" else (loss * weight).sum() / weight.sum()


def naive_focal(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """The textbook formula: (1 - exp(log p_t)) ** gamma, NaN-prone once p_t rounds to 1."""
    log_pt = logits.log_softmax(-1).gather(-1, target.clamp_min(0)[..., None]).squeeze(-1)
    loss = -((1 - log_pt.exp()) ** gamma) * log_pt
    return _reduce(loss, target, alpha, ignore_index, reduction)


def log_of_softmax(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """log(softmax(x)) instead of log_softmax(x): -inf for a very wrong example."""
    p = logits.softmax(-1).gather(-1, target.clamp_min(0)[..., None]).squeeze(-1)
    loss = -((1 - p) ** gamma) * torch.log(p)
    return _reduce(loss, target, alpha, ignore_index, reduction)


def detached_factor(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """The modulating factor computed outside the graph: right loss, wrong gradient."""
    log_pt = logits.log_softmax(-1).gather(-1, target.clamp_min(0)[..., None]).squeeze(-1)
    factor = (-torch.expm1(log_pt)).clamp_min(0).detach() ** gamma
    loss = -factor * log_pt
    return _reduce(loss, target, alpha, ignore_index, reduction)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("margin", [0.0, 5.0, 17.0, 20.0, 50.0, 100.0, -100.0])
def test_focal_loss_is_finite_with_a_finite_gradient_at_any_margin(gamma, margin):
    logits = torch.tensor([[margin, 0.0, 0.0], [1.0, 0.0, -1.0]], requires_grad=True)
    loss = FocalLoss(gamma)(logits, torch.tensor([0, 2]))
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_the_naive_formula_is_nan_where_the_safe_one_is_not():
    logits = torch.tensor([[20.0, 0.0, 0.0]], requires_grad=True)
    (naive,) = torch.autograd.grad(naive_focal(logits, torch.tensor([0]), gamma=0.5), logits)
    assert torch.isnan(naive).any()
    (safe,) = torch.autograd.grad(FocalLoss(0.5)(logits, torch.tensor([0])), logits)
    assert torch.isfinite(safe).all()


@pytest.mark.parametrize("wrong, says", [
    (naive_focal, "inf or NaN"),
    (log_of_softmax, "inf or NaN"),
    (detached_factor, "detached"),
    (lambda logits, target, **k: torch.tensor(reference_focal(logits, target, **k).item(), requires_grad=True),
     "does not depend on the logits"),
])
def test_focal_check_compares_gradients_and_never_raises(wrong, says):
    result = ex06.check_focal_loss(wrong)
    assert not result.passed
    assert says in str(result), str(result)


def test_focal_check_answers_anything_without_raising():
    for answer in (None, 3, "focal", lambda *a, **k: None, lambda *a, **k: torch.zeros(2)):
        result = ex06.check_focal_loss(answer)
        assert not result.passed


def test_focal_loss_takes_classes_second_when_told_even_when_length_equals_classes():
    torch.manual_seed(0)
    logits, target = torch.randn(4, 3, 3), torch.randint(3, (4, 3))  # (N, C, L) with L == C
    expected = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(losses.FocalLoss(gamma=0, class_dim=1)(logits, target), expected)
    assert not torch.allclose(losses.FocalLoss(gamma=0)(logits, target), expected)  # read as (N, L, C)
    with pytest.raises(ValueError, match="class_dim=1"):
        losses.FocalLoss(gamma=0)(torch.randn(4, 3, 5), torch.randint(3, (4, 5)))
    with pytest.raises(ValueError, match="class_dim"):
        losses.FocalLoss(class_dim=2)
    none = losses.focal_loss(logits, target, gamma=2, reduction="none", class_dim=1)
    assert none.shape == target.shape
