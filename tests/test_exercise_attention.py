"""Notebook 03's checks: each usual mistake, written out here on its own, gets its own name (and no
other mistake's); right answers written in other ways pass, including BERT's own finite masking."""

import math

import numpy as np
import pytest
import torch

from bert_workbook.exercises import ex03

# --- attention: one function per mistake ----------------------------------------------------------


def _padding(mask):
    return mask[:, None, None, :] == 0  # (batch, 1, 1, keys)


def unscaled(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1)).masked_fill(_padding(mask), float("-inf"))
    return torch.softmax(scores, -1).nan_to_num(0.0) @ v


def mask_ignored(q, k, v, mask):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v


def mask_after_softmax(q, k, v, mask):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)
    return (weights * mask[:, None, None, :]) @ v


def mask_on_queries(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(mask[:, None, :, None] == 0, float("-inf"))
    return torch.softmax(scores, -1).nan_to_num(0.0) @ v


def softmax_over_queries(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(_padding(mask), float("-inf"))
    return torch.softmax(scores, dim=-2).nan_to_num(0.0) @ v


def mask_multiplied(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) * mask[:, None, None, :]
    return torch.softmax(scores, -1) @ v


def nan_on_all_padding(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(_padding(mask), float("-inf"))
    return torch.softmax(scores, -1) @ v


def weights_only(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(_padding(mask), float("-inf"))
    return torch.softmax(scores, -1).nan_to_num(0.0)


ATTENTION_MISTAKES = {
    unscaled: "not divided by √d",
    mask_ignored: "the attention_mask was ignored",
    mask_after_softmax: "the mask was applied after the softmax",
    mask_on_queries: "the mask was put on the query axis",
    softmax_over_queries: "the softmax ran over the queries",
    mask_multiplied: "the 0/1 mask was multiplied into the scores",
    nan_on_all_padding: "NaN for the sequence that is all padding",
    weights_only: "expected an output of shape",
}


@pytest.mark.parametrize("mistake", ATTENTION_MISTAKES, ids=lambda f: f.__name__)
def test_attention_names_each_mistake_and_only_it(mistake):
    result = ex03.attention.check(mistake)
    assert not result.passed
    assert ATTENTION_MISTAKES[mistake] in result.message, result
    others = [words for other, words in ATTENTION_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def finite_minus_1e9(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores.masked_fill(_padding(mask), -1e9), -1) @ v


def berts_own_bias(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores + (1.0 - mask[:, None, None, :].float()) * -10000.0, -1) @ v


@pytest.mark.parametrize("answer", [finite_minus_1e9, berts_own_bias])
def test_finite_masking_passes_and_says_only_the_all_padding_sequence_differs(answer):
    result = ex03.attention.check(answer)
    assert result.passed, result
    assert "all padding" in result.message and "not zeros" in result.message
    assert "1e-9" not in ex03.attention.check(ex03.attention.reference).message
    assert "Note" not in ex03.attention.check(ex03.attention.reference).message


def numpy_in_float64(q, k, v, mask):
    q, k, v, keep = (np.asarray(x, dtype=np.float64) for x in (q, k, v, mask))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    scores = np.where(keep[:, None, None, :] > 0, scores, -np.inf)
    top = np.max(scores, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(scores - top) * (keep[:, None, None, :] > 0)
    total = weights.sum(-1, keepdims=True)
    return torch.from_numpy(np.divide(weights, total, out=np.zeros_like(weights), where=total > 0) @ v)


def with_weights_too(q, k, v, mask):
    return ex03.attention.reference(q, k, v, mask), None


@pytest.mark.parametrize("answer", [ex03.attention.reference, numpy_in_float64])
def test_attention_passes_right_answers_written_differently(answer):
    result = ex03.attention.check(answer)
    assert result.passed, result
    assert "Note" not in result.message


def test_attention_refuses_an_output_and_weights_pair_the_next_cell_cannot_use():
    result = ex03.attention.check(with_weights_too)
    assert not result.passed and "merge_heads" in result.message


# --- the input embeddings: one function per mistake -------------------------------------------------


def _tables(model, ids, types, positions=None):
    e = model.embeddings
    positions = torch.arange(ids.shape[1]) if positions is None else positions
    return e.word_embeddings.weight[ids], e.token_type_embeddings.weight[types], e.position_embeddings.weight[positions]


def no_layer_norm(model, ids, types):
    word, segment, position = _tables(model, ids, types)
    return word + segment + position


def no_segments(model, ids, types):
    word, _, position = _tables(model, ids, types)
    return model.embeddings.LayerNorm(word + position)


def every_token_segment_zero(model, ids, types):
    word, segment, position = _tables(model, ids, torch.zeros_like(types))
    return model.embeddings.LayerNorm(word + segment + position)


def positions_from_one(model, ids, types):
    word, segment, position = _tables(model, ids, types, torch.arange(1, ids.shape[1] + 1))
    return model.embeddings.LayerNorm(word + segment + position)


def no_positions(model, ids, types):
    word, segment, _ = _tables(model, ids, types)
    return model.embeddings.LayerNorm(word + segment)


def runs_the_module(model, ids, types):
    return model.embeddings(input_ids=ids, token_type_ids=types)


def right_but_spoils_the_model_afterwards(model, ids, types):
    word, segment, position = _tables(model, ids, types)
    out = model.embeddings.LayerNorm(word + segment + position).detach().clone()
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.zero_()  # notebook 03's later cells would see this
    return out


EMBEDDING_MISTAKES = {
    no_layer_norm: "LayerNorm is missing",
    no_segments: "the segment (token type) embeddings are missing",
    every_token_segment_zero: "token_type_ids were ignored",
    positions_from_one: "positions must start at 0",
    no_positions: "the position embeddings are missing",
    runs_the_module: "ran model.embeddings",
    right_but_spoils_the_model_afterwards: "changed the model's weights in place",
}


@pytest.mark.parametrize("mistake", EMBEDDING_MISTAKES, ids=lambda f: f.__name__)
def test_embeddings_names_each_mistake_and_only_it(mistake):
    result = ex03.embeddings.check(mistake)
    assert not result.passed
    assert EMBEDDING_MISTAKES[mistake] in result.message, result
    others = [words for other, words in EMBEDDING_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def with_functional_calls(model, ids, types):
    e = model.embeddings
    summed = (torch.nn.functional.embedding(ids, e.word_embeddings.weight)
              + torch.nn.functional.embedding(types, e.token_type_embeddings.weight)
              + e.position_embeddings.weight[: ids.shape[1]].unsqueeze(0))
    norm = e.LayerNorm
    return torch.nn.functional.layer_norm(summed, norm.normalized_shape, norm.weight, norm.bias, norm.eps).double()


def flattened_lookups(model, ids, types):
    e = model.embeddings
    word = e.word_embeddings.weight.index_select(0, ids.reshape(-1)).reshape(*ids.shape, -1)
    segment = e.token_type_embeddings.weight.index_select(0, types.reshape(-1)).reshape(*ids.shape, -1)
    return e.LayerNorm(word + segment + e.position_embeddings(torch.arange(ids.shape[1])))


@pytest.mark.parametrize("answer", [ex03.embeddings.reference, with_functional_calls, flattened_lookups])
def test_embeddings_passes_right_answers_written_differently(answer):
    result = ex03.embeddings.check(answer)
    assert result.passed, result
