import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_workbook import masking
from bert_workbook.exercises import ex02

V, MASK = 30522, 103


def batch(seed=0, rows=4, length=32):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(999, V, (rows, length), generator=g)
    special = torch.zeros_like(ids)
    ids[:, 0], ids[:, -1], special[:, 0], special[:, -1] = 101, 102, 1, 1
    ids[0, -8:], special[0, -8:] = 0, 1  # padding
    return ids, special


def test_reference_passes_the_check():
    result = ex02.check_mask_tokens(masking.mask_tokens)
    assert result.passed, str(result)
    assert "200,0" in str(result) and "4.5-sigma" in str(result)


def over_all_tokens(ids, special, vocab_size, mask_id, p, g):
    """The common mistake: 80/10/10 applied to every token, not only the selected ones."""
    sel = (torch.rand(ids.shape, generator=g) < p) & ~special.bool()
    labels = torch.where(sel, ids, -100)
    u, x = torch.rand(ids.shape, generator=g), ids.clone()
    x[(u < 0.8) & ~special.bool()] = mask_id
    return x, labels


def always_mask(ids, special, vocab_size, mask_id, p, g):
    return masking.mask_tokens(ids, special, vocab_size, mask_id, p, g, 1.0, 0.0)


def ignores_generator(ids, special, vocab_size, mask_id, p, g):
    return masking.mask_tokens(ids, special, vocab_size, mask_id, p, None)


def random_from_three_tokens(ids, special, vocab_size, mask_id, p, g):
    return masking.mask_tokens(ids, special, vocab_size, mask_id, p, g,
                               random_token_ids=torch.tensor([1996, 1012, 1010]))


def selects_specials(ids, special, vocab_size, mask_id, p, g):
    return masking.mask_tokens(ids, torch.zeros_like(special), vocab_size, mask_id, p, g)


def stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("wrong", [stub, over_all_tokens, always_mask, ignores_generator,
                                   random_from_three_tokens, selects_specials, lambda *a: None,
                                   lambda *a: ([1], [2])])
def test_check_fails_on_wrong_answers(wrong):
    assert not ex02.check_mask_tokens(wrong).passed


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0, 1))
def test_mask_tokens_invariants(seed, p):
    ids, special = batch(seed % 1000)
    original, special_copy = ids.clone(), special.clone()
    inputs, labels = masking.mask_tokens(ids, special, V, MASK, p, torch.Generator().manual_seed(seed))
    assert torch.equal(ids, original) and torch.equal(special, special_copy)  # inputs untouched
    selected = labels != -100
    assert not (selected & special.bool()).any()
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])
    again = masking.mask_tokens(ids, special, V, MASK, p, torch.Generator().manual_seed(seed))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


def test_probability_zero_and_one():
    ids, special = batch()
    _, labels = masking.mask_tokens(ids, special, V, MASK, 0.0, torch.Generator().manual_seed(0))
    assert (labels == -100).all()
    _, labels = masking.mask_tokens(ids, special, V, MASK, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(labels != -100, ~special.bool())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"mlm_probability": 1.5}, ValueError, "mlm_probability"),
        ({"mlm_probability": -0.1}, ValueError, "mlm_probability"),
        ({"mask_replace_prob": 0.95, "random_replace_prob": 0.1}, ValueError, "exceed 1"),
        ({"vocab_size": 0}, ValueError, "vocab_size"),
        ({"mask_token_id": V}, ValueError, "mask_token_id"),
        ({"vocab_size": 500}, ValueError, "input_ids must lie"),
        ({"generator": 42}, TypeError, "Generator"),
        ({"random_token_ids": torch.tensor([], dtype=torch.long)}, ValueError, "empty"),
    ],
)
def test_mask_tokens_rejects_bad_arguments(kwargs, error, match):
    ids, special = batch()
    args = {"input_ids": ids, "special_tokens_mask": special, "vocab_size": V, "mask_token_id": MASK}
    args.update(kwargs)
    if args["vocab_size"] == 500:
        args["mask_token_id"] = 1
    with pytest.raises(error, match=match):
        masking.mask_tokens(**args)


def test_mask_tokens_rejects_mismatched_shapes_and_types():
    ids, special = batch()
    with pytest.raises(ValueError, match="shape"):
        masking.mask_tokens(ids, special[:, :-1], V, MASK)
    with pytest.raises(TypeError, match="long"):
        masking.mask_tokens(ids.float(), special, V, MASK)
    with pytest.raises(TypeError, match="special_tokens_mask"):
        masking.mask_tokens(ids, special.tolist(), V, MASK)


def test_corruption_counts_and_bounds():
    original = torch.tensor([[101, 5, 6, 7, 8, 102]])
    special = torch.tensor([[1, 0, 0, 0, 0, 1]])
    corrupted = torch.tensor([[101, MASK, 9, 7, 8, 102]])
    labels = torch.tensor([[-100, 5, 6, 7, -100, -100]])
    counts = masking.corruption_counts(original, corrupted, labels, special, MASK)
    assert counts == {"eligible": 4, "selected": 3, "mask": 1, "random": 1, "kept": 1}
    assert masking.binomial_bound(0.5, 100, sigmas=2) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        masking.binomial_bound(0.5, 0)
    with pytest.raises(ValueError, match="shape"):
        masking.corruption_counts(original, corrupted[:, :3], labels, special, MASK)


def test_masked_rows_describe_every_token(tokenizer):
    rows = masking.masked_rows(tokenizer, "The cat sat on the mat.", mlm_probability=1.0, seed=3)
    assert rows[0]["status"] == rows[-1]["status"] == "not selected"
    assert {r["status"] for r in rows[1:-1]} <= {"[MASK]", "random", "kept"}
    for row in rows[1:-1]:
        assert row["label"] == tokenizer.convert_tokens_to_ids(row["token"])
        if row["status"] == "[MASK]":
            assert row["model sees"] == "[MASK]"
    assert masking.masked_rows(tokenizer, "The cat sat.", 0.5, seed=3) == masking.masked_rows(
        tokenizer, "The cat sat.", 0.5, seed=3)
    with pytest.raises(ValueError, match="non-empty"):
        masking.masked_rows(tokenizer, "  ")


def test_split_word_share_counts_partly_selected_words():
    word_ids = torch.tensor([[-1, 0, 0, 0, 1, 2, 2, -1]])
    selected = torch.tensor([[0, 1, 0, 0, 1, 1, 1, 0]])
    share, words = masking.split_word_share(selected, word_ids)
    assert words == 2 and share == 0.5  # word 0 partly, word 2 wholly; word 1 has one piece


def test_split_word_share_with_nothing_touched_is_nan():
    share, words = masking.split_word_share(torch.zeros(1, 3), torch.tensor([[0, 0, 1]]))
    assert words == 0 and share != share


def test_split_word_share_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        masking.split_word_share(torch.zeros(1, 3), torch.zeros(1, 4))


def test_check_requires_clear_errors_for_bad_arguments():
    def no_validation(ids, special, vocab_size, mask_id, p, g):
        p = min(max(p, 0.0), 1.0)  # silently clamps instead of rejecting
        if special.shape != ids.shape:
            special = torch.zeros_like(ids)
        return masking.mask_tokens(ids, special, vocab_size, mask_id, p, g)

    result = ex02.check_mask_tokens(no_validation)
    assert not result.passed
    assert "mlm_probability=1.5 was accepted" in str(result)
    assert "another shape was accepted" in str(result)


def test_binomial_bound_is_the_exact_central_interval():
    from scipy.stats import binom

    # few draws: the exact interval, not the normal approximation's
    low, high = binom.interval(1 - 6.795e-6, 20, 0.1)
    assert masking.binomial_bound(0.1, 20) == pytest.approx(max(0.1 - low / 20, high / 20 - 0.1))
    assert masking.binomial_bound(0.15, 100_000) == pytest.approx(4.5 * (0.15 * 0.85 / 100_000) ** 0.5, rel=0.02)
    with pytest.raises(ValueError, match="positive int"):
        masking.binomial_bound(0.5, 2.5)
