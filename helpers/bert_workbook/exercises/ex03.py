"""Notebook 03's exercises: the input embeddings, and scaled dot-product attention with a mask.

``embeddings.check(fn)`` compares a learner's ``fn(model, input_ids, token_type_ids)`` with the
model's own embedding module and notices a call to that module; ``attention.check(fn)`` runs a
learner's ``fn(q, k, v, attention_mask)`` against PyTorch's own ``scaled_dot_product_attention``
on random shapes (with padding, without, and a sequence that is all padding) and names the usual
mistakes. On the sequence that is all padding, finite values (BERT's own ``-10000`` masking) pass
with a note where PyTorch returns zeros: no real token reads them, and a finite value times its
weight 0 stays 0; NaN there fails, since NaN times 0 is NaN. Each exercise also has ``hint()`` and
``solution()``.
"""

from __future__ import annotations

import math

import torch

from bert_workbook import attention as reference
from bert_workbook import embeddings as embeddings_reference
from bert_workbook.exercises.core import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    call_or_verdict,
    named_mistake,
    nudge,
    shape_verdict,
)
from bert_workbook.numerics import difference_bound

ATTENTION_TOLERANCE = 1e-5
ATTENTION_NAME = "Exercise 2 (scaled dot-product attention)"

# (batch, heads, length, d) and the real length of each sequence (0: all padding).
ATTENTION_CASES = (
    ((1, 1, 4, 8), (4,)),
    ((2, 3, 5, 4), (5, 3)),
    ((3, 2, 7, 16), (7, 2, 0)),
    ((2, 4, 6, 32), (1, 6)),
)


def _case_tensors(shape, lengths, seed):
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    mask = (torch.arange(shape[2])[None, :] < torch.tensor(lengths)[:, None]).long()
    return q, k, v, mask


def _expected(q, k, v, mask):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask.bool()[:, None, None, :])


def _softmax_then(scores, v, dim=-1):
    return torch.softmax(scores, dim=dim).nan_to_num(0.0) @ v


def _bias(mask):
    return reference.key_padding_bias(mask)


# What the usual wrong answers compute (q, k, v, mask) -> output: the check names the one it sees.
ATTENTION_MISTAKES = {
    "the scores are not divided by √d (d = q.shape[-1])":
        lambda q, k, v, m: _softmax_then(q @ k.transpose(-2, -1) + _bias(m), v),
    "the attention_mask was ignored: queries attend to padding":
        lambda q, k, v, m: _softmax_then(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), v),
    "the mask was applied after the softmax: the weights on real keys no longer sum to 1":
        lambda q, k, v, m: (torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)
                            * m[:, None, None, :]) @ v,
    "the mask was put on the query axis; it belongs on the key axis (the last one)":
        lambda q, k, v, m: _softmax_then(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
                                         + _bias(m).transpose(-2, -1), v),
    "the softmax ran over the queries (dim=-2); each query's weights over the keys must sum to 1":
        lambda q, k, v, m: _softmax_then(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + _bias(m), v, dim=-2),
    "the 0/1 mask was multiplied into the scores; a padding key needs -inf added, so that its "
    "weight becomes 0": lambda q, k, v, m: _softmax_then(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
                                                         * m[:, None, None, :], v),
}


def _as_output(out):
    """The learner's output as a float tensor, or None when it is not a torch tensor of real
    numbers. The next cells pass it to ``attention.merge_heads``, which needs exactly that: a
    numpy array or an ``(output, weights)`` pair would pass here and crash there."""
    if not (isinstance(out, torch.Tensor) and out.is_floating_point()):
        return None
    return out.detach().float()


HINT_ATTENTION = nudge("ex03.attention")
FINITE_PADDING_NOTE = (
    "Note: on the sequence that is all padding your output is not zeros, as when padding gets a "
    "large finite negative (-1e9, or BERT's (1 - mask) * -10000) instead of -inf; PyTorch returns "
    "zeros there. That is fine: no real token reads a padding position, and a finite value times "
    "the weight 0 it gets stays 0 (a NaN would not).")


def _attention_verdict(got, expected, q, k, v, mask, empty, where) -> tuple[CheckResult | None, bool]:
    """``(failing verdict or None, finite values on the all-padding sequence)`` for one case."""
    if torch.isnan(got).any():
        real = got[~empty]
        if empty.any() and not torch.isnan(real).any() and torch.allclose(real, expected[~empty],
                                                                           atol=ATTENTION_TOLERANCE):
            return CheckResult(ATTENTION_NAME, False, f"on {where}: right wherever a sequence has a real token, "
                               "but NaN for the sequence that is all padding: every score there is -inf, and "
                               "softmax gives 0/0; such a query must return zeros, as PyTorch's does.",
                               HINT_ATTENTION), False
        return CheckResult(ATTENTION_NAME, False, f"on {where}: your output contains NaN.", HINT_ATTENTION), False
    if torch.allclose(got, expected, atol=ATTENTION_TOLERANCE, rtol=ATTENTION_TOLERANCE):
        return None, False
    if (empty.any() and torch.isfinite(got).all()
            and torch.allclose(got[~empty], expected[~empty], atol=ATTENTION_TOLERANCE, rtol=ATTENTION_TOLERANCE)):
        return None, True
    with torch.no_grad():
        wrong = {name: mistake(q, k, v, mask).nan_to_num(0.0) for name, mistake in ATTENTION_MISTAKES.items()}
    name = named_mistake(got.nan_to_num(0.0), wrong, lambda a, b: torch.allclose(a, b, atol=1e-5, rtol=1e-5))
    if name:
        return CheckResult(ATTENTION_NAME, False, f"on {where}: {name}.", HINT_ATTENTION), False
    return CheckResult(ATTENTION_NAME, False, f"on {where}: your output differs from PyTorch's "
                       f"scaled_dot_product_attention by up to {float((got - expected).abs().max()):.2e}.",
                       HINT_ATTENTION), False


def check_attention(fn) -> CheckResult:
    """``fn(q, k, v, attention_mask)`` must equal ``torch.nn.functional.scaled_dot_product_attention``
    with the mask on the keys, within ``ATTENTION_TOLERANCE``, on every case of ``ATTENTION_CASES``.
    On a sequence that is all padding, finite values instead of PyTorch's zeros pass, with a note."""
    lines, finite_padding = [], False
    for i, (shape, lengths) in enumerate(ATTENTION_CASES):
        q, k, v, mask = _case_tensors(shape, lengths, seed=100 + i)
        expected = _expected(q, k, v, mask)
        where = f"q, k, v of shape {shape}, real lengths {list(lengths)}"
        out, failed = call_or_verdict(ATTENTION_NAME, fn, q, k, v, mask)
        if failed is not None:
            return failed
        got = _as_output(out)
        if got is None:
            return CheckResult(ATTENTION_NAME, False, f"your function returned {type(out).__name__}"
                               + (f" of {out.dtype}" if isinstance(out, torch.Tensor) else "")
                               + "; return the attention output alone, as a torch tensor of real numbers "
                               "(not numpy, not (output, weights)): the next cells pass it to "
                               "attention.merge_heads.", HINT_ATTENTION)
        if got.shape != expected.shape:
            return CheckResult(ATTENTION_NAME, False, f"on {where}: expected an output of shape "
                               f"{tuple(expected.shape)} (batch, heads, length, d), got {tuple(got.shape)}.",
                               HINT_ATTENTION)
        failed, finite = _attention_verdict(got, expected, q, k, v, mask, torch.tensor(lengths) == 0, where)
        if failed is not None:
            return failed
        finite_padding |= finite
        difference = (got - expected)[torch.tensor(lengths) != 0].abs().max()
        lines.append(f"{where}: {difference_bound(difference, ATTENTION_TOLERANCE / 10)}")
    return CheckResult(ATTENTION_NAME, True, "equal to torch.nn.functional.scaled_dot_product_attention "
                       f"within {ATTENTION_TOLERANCE:g}:\n  " + "\n  ".join(lines)
                       + (f"\n{FINITE_PADDING_NOTE}" if finite_padding else ""))


attention = Exercise(
    name=ATTENTION_NAME,
    checker=check_attention,
    hints=(
        "scores = q @ k.transpose(-2, -1) has shape (batch, heads, length, length): one row per "
        "query, one column per key. Divide it by √d, with d = q.shape[-1].",
        "The mask marks padding *keys*. Reshape attention_mask (batch, length) to (batch, 1, 1, "
        "length) and add -inf to the scores where it is 0, before the softmax; the softmax runs "
        "over the last axis, the keys.",
        "A sequence that is all padding has every score -inf, and its softmax is NaN: replace NaN "
        "weights by 0 (weights.nan_to_num(0.0)). Then return weights @ v.",
    ),
    reference=reference.scaled_dot_product_attention,
    solution_code='''
def scaled_dot_product_attention(q, k, v, attention_mask):
    """softmax(q kᵀ / √d + mask) v, where padding keys get -inf before the softmax."""
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5       # (batch, heads, query, key)
    padding = attention_mask[:, None, None, :] == 0              # the same for every head and query
    scores = scores.masked_fill(padding, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)      # a sequence of padding only: 0, not NaN
    return weights @ v
''',
)


EMBEDDINGS_NAME = "Exercise 1 (build_input_embeddings)"
EMBEDDING_TOLERANCE = 1e-6  # |mine - model| <= tol + tol * |model|, elementwise


EMBEDDING_SENTENCES = (
    ("The bank declined my payment.", None),
    ("The bank declined my payment.", "Please retry after some time."),
    ("Unaffable tokenizers", "were surprisingly good at hyperparameterization, weren't they?"),
)


def _embedding_cases():
    """(description, model, input_ids, token_type_ids): the embedded encoder on a sentence, a
    pair and a padded batch of pairs, and a small random BERT (other sizes, 3 segment types)."""
    import torch
    from transformers import BertConfig, BertModel

    from bert_workbook.assets import load_encoder, load_tokenizer

    tokenizer, encoder = load_tokenizer("embedded"), load_encoder("embedded")
    single = tokenizer(EMBEDDING_SENTENCES[0][0], return_tensors="pt")
    pair = tokenizer(*EMBEDDING_SENTENCES[1], return_tensors="pt")
    batch = tokenizer([a for a, _ in EMBEDDING_SENTENCES[1:]], [b for _, b in EMBEDDING_SENTENCES[1:]],
                      padding=True, return_tensors="pt")
    torch.manual_seed(HELD_OUT_SEED)
    config = BertConfig(vocab_size=500, hidden_size=48, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=96, max_position_embeddings=40, type_vocab_size=3,
                        layer_norm_eps=1e-7)
    small = BertModel(config).eval()
    with torch.no_grad():
        small.embeddings.LayerNorm.weight.uniform_(0.5, 2.0)
        small.embeddings.LayerNorm.bias.normal_(0, 0.5)
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    ids = torch.randint(500, (3, 40), generator=generator)
    types = torch.randint(3, (3, 40), generator=generator)
    return [
        ("one sentence", encoder, single["input_ids"], single["token_type_ids"]),
        ("a sentence pair", encoder, pair["input_ids"], pair["token_type_ids"]),
        ("a padded batch of pairs", encoder, batch["input_ids"], batch["token_type_ids"]),
        ("a random 48-wide BERT with 3 segment types", small, ids, types),
    ]


def _embedding_mistakes(model, ids, types):
    """What the usual wrong answers compute, to name the mistake in the verdict."""
    import torch

    e = model.embeddings
    positions = torch.arange(ids.shape[1])
    ln = e.LayerNorm
    word, seg = e.word_embeddings.weight[ids], e.token_type_embeddings.weight[types]
    pos = e.position_embeddings.weight[positions]
    shifted = e.position_embeddings.weight[(positions + 1).clamp(max=e.position_embeddings.num_embeddings - 1)]
    return {
        "LayerNorm is missing (BERT normalizes the sum)": word + seg + pos,
        "the segment (token type) embeddings are missing": ln(word + pos),
        "token_type_ids were ignored: every token got segment 0": ln(
            word + e.token_type_embeddings.weight[torch.zeros_like(types)] + pos),
        "positions must start at 0, not 1": ln(word + seg + shifted),
        "the position embeddings are missing": ln(word + seg),
    }


HINT_EMBEDDINGS = nudge("ex03.embeddings")


def _call_watching_embeddings(exercise: str, fn, model, *args):
    """``call_or_verdict(fn, copy of model, *args)``, and whether ``fn`` ran the copy's
    ``embeddings`` module. The copy keeps the check's own model intact whatever ``fn`` does, and
    a change to its weights is a failing verdict."""
    import copy as copying

    copy = copying.deepcopy(model)
    called = []
    module = copy.embeddings
    original = module.forward

    def spy(*inner, **options):
        called.append(True)
        return original(*inner, **options)

    module.forward = spy  # an instance attribute: module(...) and module.forward(...) both reach it
    out, failed = call_or_verdict(exercise, fn, copy, *args)
    if failed is None and not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                      copy.state_dict().values())):
        failed = CheckResult(exercise, False, "your function changed the model's weights in place; later "
                             "cells still need them: read the tables, never write to them.")
    return out, failed, bool(called)


def check_build_input_embeddings(fn) -> CheckResult:
    """``fn(model, input_ids, token_type_ids)`` must equal the model's own embedding module
    (eval mode) to within ``EMBEDDING_TOLERANCE`` on four kinds of input."""
    import torch

    exercise = EMBEDDINGS_NAME
    lines = []
    for name, model, ids, types in _embedding_cases():
        with torch.no_grad():
            expected = model.embeddings(input_ids=ids, token_type_ids=types)
            mistakes = _embedding_mistakes(model, ids, types)
            out, failed, called = _call_watching_embeddings(exercise, fn, model, ids, types)
        if called:
            return CheckResult(exercise, False, "your function ran model.embeddings (directly or through the "
                               "model), which is what the exercise asks you to rebuild: use only its tables "
                               "and its LayerNorm.", HINT_EMBEDDINGS)
        if failed is None:  # a failing CheckResult is falsy: compare with None
            failed = shape_verdict(exercise, out, expected, f"on {name}, your embeddings", HINT_EMBEDDINGS)
        if failed is not None:
            return failed
        try:
            out = out.detach().float().cpu()
            error = float((out - expected).abs().max())
        except Exception as problem:  # e.g. a tensor on the meta device has no values
            return CheckResult(exercise, False, f"on {name}, your output cannot be compared "
                               f"({type(problem).__name__}: {problem}); return an ordinary tensor "
                               "on the CPU.", HINT_EMBEDDINGS)
        if not torch.allclose(out, expected, atol=EMBEDDING_TOLERANCE, rtol=EMBEDDING_TOLERANCE):
            mistake = named_mistake(out, mistakes, lambda a, b: torch.allclose(a, b, atol=1e-5, rtol=1e-5))
            if mistake:
                return CheckResult(exercise, False, f"on {name}: {mistake}.", HINT_EMBEDDINGS)
            return CheckResult(exercise, False, f"on {name}, the largest difference from the "
                               f"model's own embeddings is {error:.2e}.", HINT_EMBEDDINGS)
        lines.append(f"{name} {tuple(ids.shape)}: {difference_bound(error, EMBEDDING_TOLERANCE / 10)}")
    return CheckResult(exercise, True, f"equal to the model's embedding module within "
                       f"{EMBEDDING_TOLERANCE:g}:\n  " + "\n  ".join(lines))


embeddings = Exercise(
    name=EMBEDDINGS_NAME,
    checker=check_build_input_embeddings,
    hints=(
        "Each table is an nn.Embedding: index its .weight with the ids, e.g. "
        "model.embeddings.word_embeddings.weight[input_ids] has shape (batch, length, width).",
        "Positions are torch.arange(length) for every row; the segment ids are token_type_ids. "
        "Add the three lookups (broadcasting does the batch), then apply model.embeddings.LayerNorm.",
        "tables = model.embeddings; positions = torch.arange(input_ids.shape[1]); return "
        "tables.LayerNorm(tables.word_embeddings.weight[input_ids] + tables.token_type_embeddings.weight"
        "[token_type_ids] + tables.position_embeddings.weight[positions]).",
    ),
    reference=embeddings_reference.build_input_embeddings,
    solution_code='''
def build_input_embeddings(model, input_ids, token_type_ids):
    """LayerNorm(token + segment + position embeddings), from the model's tables."""
    tables = model.embeddings
    positions = torch.arange(input_ids.shape[1])
    summed = (tables.word_embeddings.weight[input_ids]
              + tables.token_type_embeddings.weight[token_type_ids]
              + tables.position_embeddings.weight[positions])  # broadcast over the batch
    return tables.LayerNorm(summed)
''',
)
