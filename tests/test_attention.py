import math

import numpy as np
import pytest
import torch

from bert_workbook import assets, attention
from bert_workbook.exercises import ex03


@pytest.fixture(scope="module")
def encoder():
    return assets.load_encoder("embedded").eval()


@pytest.fixture(scope="module")
def padded_batch():
    tokenizer = assets.load_tokenizer("embedded")
    return tokenizer(["The bank declined my payment.", "We sat on the grassy bank of the river all afternoon."],
                     padding=True, return_tensors="pt")


def test_split_and_merge_heads_are_inverse():
    x = torch.randn(2, 5, 12)
    heads = attention.split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    assert torch.equal(attention.merge_heads(heads), x)
    assert torch.equal(heads[:, 1], x[..., 4:8])  # head 1 holds the second block of 4 dimensions
    with pytest.raises(ValueError, match="num_heads"):
        attention.split_heads(x, 5)
    with pytest.raises(ValueError, match="batch, length, hidden"):
        attention.split_heads(x[0], 3)


@pytest.mark.parametrize("lengths", [(5, 5), (5, 2), (3, 0)])
def test_reference_attention_equals_pytorch(lengths):
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))
    mask = (torch.arange(5)[None] < torch.tensor(lengths)[:, None]).long()
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask.bool()[:, None, None])
    out, weights = attention.scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    real = mask.bool()
    assert torch.all(weights[~real[:, None, None, :].expand_as(weights)] == 0)  # no weight on padding keys
    sums = weights.sum(-1)
    torch.testing.assert_close(sums[real.any(1)], torch.ones_like(sums[real.any(1)]))


def test_layer_by_hand_equals_the_models_first_layer(encoder, padded_batch):
    with torch.no_grad():
        states = encoder(**padded_batch, output_hidden_states=True).hidden_states
        steps = attention.encoder_layer_by_hand(encoder.encoder.layer[0], states[0], padded_batch["attention_mask"])
    torch.testing.assert_close(steps["output"], states[1], atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_real_tokens_when_masked(encoder, padded_batch):
    tokenizer = assets.load_tokenizer("embedded")
    alone = tokenizer(["The bank declined my payment."], return_tensors="pt")
    with torch.no_grad():
        single = encoder(**alone).last_hidden_state[0]
        batched = encoder(**padded_batch).last_hidden_state[0, :single.shape[0]]
        unmasked = encoder(input_ids=padded_batch["input_ids"]).last_hidden_state[0, :single.shape[0]]
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    assert float((unmasked - single).abs().max()) > 1e-2


def test_attention_maps_and_shares(encoder, padded_batch):
    maps = attention.attention_maps(encoder, padded_batch["input_ids"], padded_batch["attention_mask"])
    layers, heads = encoder.config.num_hidden_layers, encoder.config.num_attention_heads
    length = padded_batch["input_ids"].shape[1]
    assert maps.shape == (layers, 2, heads, length, length)
    tokenizer = assets.load_tokenizer("embedded")
    shares = attention.attention_shares(maps, padded_batch["input_ids"], padded_batch["attention_mask"],
                                        tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert shares.shape == (layers, heads, len(attention.ATTENTION_TARGETS))
    assert torch.all(shares >= 0) and torch.all(shares <= 1 + 1e-6)
    # one-hot maps: every query attends only to [CLS] (position 0)
    onehot = torch.zeros_like(maps)
    onehot[..., 0] = 1
    cls_only = attention.attention_shares(onehot, padded_batch["input_ids"], padded_batch["attention_mask"],
                                          tokenizer.cls_token_id, tokenizer.sep_token_id)
    torch.testing.assert_close(cls_only[..., 0], torch.ones(layers, heads))
    with pytest.raises(ValueError, match="do not match"):
        attention.attention_shares(maps[:, :1], padded_batch["input_ids"], padded_batch["attention_mask"], 1, 2)


# --- the exercise check -----------------------------------------------------------------------


def right_numpy(q, k, v, mask):
    return attention.scaled_dot_product_attention(q, k, v, mask).numpy()


def right_with_weights(q, k, v, mask):
    return attention.scaled_dot_product_attention(q, k, v, mask, return_weights=True)


def right_bool_mask_and_finfo(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
    return torch.softmax(scores, -1).nan_to_num(0.0) @ v


@pytest.mark.parametrize("answer", [attention.scaled_dot_product_attention, right_bool_mask_and_finfo])
def test_check_attention_passes_right_answers(answer):
    result = ex03.attention.check(answer)
    assert result.passed, result


def stub(q, k, v, mask):
    raise NotImplementedError


def nan_on_empty(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + attention.key_padding_bias(mask)
    return torch.softmax(scores, -1) @ v


@pytest.mark.parametrize("answer, says", [
    (stub, "not implemented"),
    (None, "expected a function"),
    (lambda q, k, v, m: None, "returned None"),
    (lambda q, k, v, m: "attention", "returned str"),
    (lambda q, k, v, m: q[..., :2], "shape"),
    (lambda q, k, v, m: 1 / 0, "ZeroDivisionError"),
    (lambda q, k, v, m: q * float("nan"), "NaN"),
    (nan_on_empty, "all padding"),
    (lambda q, k, v, m: torch.zeros_like(q), "differs"),
    (right_numpy, "not numpy"),            # right numbers, but merge_heads in the next cell needs a tensor
    (right_with_weights, "(output, weights)"),
])
def test_check_attention_fails_wrong_answers_with_a_reason(answer, says):
    result = ex03.attention.check(answer)
    assert not result.passed
    assert says.lower() in str(result).lower(), str(result)


def test_hints_progress_and_solution_shows_the_reference(capsys):
    exercise = ex03.Exercise("x", ex03.check_attention, ("first", "second"), attention.scaled_dot_product_attention)
    exercise.hint()
    exercise.hint()
    exercise.hint()
    out = capsys.readouterr().out
    assert "Hint 1 of 2" in out and out.count("Hint 2 of 2") == 2
    exercise.solution()
    assert "def scaled_dot_product_attention" in capsys.readouterr().out


def test_a_broken_checker_returns_a_verdict():
    exercise = ex03.Exercise("x", lambda answer: 1 / 0, (), attention.scaled_dot_product_attention)
    result = exercise.check(None)
    assert not result.passed and "check itself failed" in result.message


def test_key_padding_bias_accepts_numpy_and_rejects_bad_shapes():
    bias = attention.key_padding_bias(np.array([[1, 1, 0]]))
    assert bias.shape == (1, 1, 1, 3) and bias[0, 0, 0, 2] == float("-inf") and bias[0, 0, 0, 0] == 0
    with pytest.raises(ValueError, match="batch, length"):
        attention.key_padding_bias(np.array([1, 0]))


def test_shares_over_many_texts_and_timings(encoder):
    tokenizer = assets.load_tokenizer("embedded")
    texts = ["A fine film.", "The plot made no sense at all, and the actors seemed bored.", "Yes."]
    shares = attention.attention_shares_over(encoder, tokenizer, texts, batch_size=2)
    assert shares.shape == (encoder.config.num_hidden_layers, encoder.config.num_attention_heads, 5)
    with pytest.raises(ValueError, match="non-empty"):
        attention.attention_shares_over(encoder, tokenizer, [])
    rows = attention.time_attention_and_feed_forward(encoder.encoder.layer[0], [8, 16], min_run_time=0.01)
    assert len(rows) == 4 and all(row["seconds"] > 0 for row in rows)


def test_attention_explorer_builds_and_reports_bad_input(encoder):
    tokenizer = assets.load_tokenizer("embedded")
    explorer = attention.attention_explorer(encoder, tokenizer, "The bank declined my payment.", layer=2, head=3)
    view = explorer.children[-1]
    assert "<table" in view.value and "declined" in view.value
    assert "explorer" in repr(explorer)


def embeddings_right(model, input_ids, token_type_ids):
    tables = model.embeddings
    positions = torch.arange(input_ids.shape[1])
    return tables.LayerNorm(tables.word_embeddings.weight[input_ids] + tables.token_type_embeddings.weight[token_type_ids]
                            + tables.position_embeddings.weight[positions])


@pytest.mark.parametrize("answer, passes, says", [
    (embeddings_right, True, "equal"),
    (lambda model, ids, types: model.embeddings(input_ids=ids, token_type_ids=types), False, "ran model.embeddings"),
    (lambda model, ids, types: model.embeddings.forward(input_ids=ids, token_type_ids=types), False, "ran model.embeddings"),
    (lambda model, ids, types: model(input_ids=ids, token_type_ids=types, output_hidden_states=True).hidden_states[0],
     False, "ran model.embeddings"),
    (None, False, "expected a function"),
    (lambda model, ids, types: embeddings_right(model, ids, torch.zeros_like(types)), False, "segment"),
])
def test_embeddings_check_sees_a_call_to_the_embedding_module(answer, passes, says):
    result = ex03.embeddings.check(answer)
    assert result.passed is passes
    assert says in str(result), str(result)

