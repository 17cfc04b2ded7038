"""Notebook 03's exercises: the input embeddings, and scaled dot-product attention with a mask.

``embeddings.check(fn)`` compares a learner's ``fn(model, input_ids, token_type_ids)`` with the
model's own embedding module and notices a call to that module; ``attention.check(fn)`` runs a
learner's ``fn(q, k, v, attention_mask)`` against PyTorch's own ``scaled_dot_product_attention``
on random shapes (with padding, without, and a sequence that is all padding) and names the usual
mistakes. Each exercise also has ``hint()`` and ``solution()``.
"""

from __future__ import annotations

import math

import torch

from bert_workbook import attention as reference
from bert_workbook import embeddings as embeddings_reference
from bert_workbook.exercise import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    call_or_verdict,
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
    """The learner's output as a float tensor (a tuple's first element, a numpy array), or None."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if hasattr(out, "__array__") and not isinstance(out, torch.Tensor):
        try:
            out = torch.as_tensor(out)
        except Exception:  # anything that cannot become a tensor
            return None
    return out.detach().float() if isinstance(out, torch.Tensor) else None


def check_attention(fn) -> CheckResult:
    """``fn(q, k, v, attention_mask)`` must equal ``torch.nn.functional.scaled_dot_product_attention``
    with the mask on the keys, within ``ATTENTION_TOLERANCE``, on every case of ``ATTENTION_CASES``."""
    hint = "call ex03.attention.hint() for a nudge, again for more."
    lines = []
    for i, (shape, lengths) in enumerate(ATTENTION_CASES):
        q, k, v, mask = _case_tensors(shape, lengths, seed=100 + i)
        expected = _expected(q, k, v, mask)
        where = f"q, k, v of shape {shape}, real lengths {list(lengths)}"
        out, failed = call_or_verdict(ATTENTION_NAME, fn, q.clone(), k.clone(), v.clone(), mask.clone())
        if failed is not None:
            return failed
        if out is None:
            return CheckResult(ATTENTION_NAME, False, "your function returned None.",
                               "did you forget the `return` statement?")
        got = _as_output(out)
        if got is None:
            return CheckResult(ATTENTION_NAME, False, f"your function returned {type(out).__name__}; "
                               "return the attention output, a tensor.", hint)
        if got.shape != expected.shape:
            return CheckResult(ATTENTION_NAME, False, f"on {where}: expected an output of shape "
                               f"{tuple(expected.shape)} (batch, heads, length, d), got {tuple(got.shape)}.", hint)
        empty = torch.tensor(lengths) == 0
        if torch.isnan(got).any():
            clean = got.clone()
            clean[empty] = expected[empty]
            if empty.any() and not torch.isnan(clean).any() and torch.allclose(clean, expected, atol=ATTENTION_TOLERANCE):
                return CheckResult(ATTENTION_NAME, False, f"on {where}: right wherever a sequence has a real "
                                   "token, but NaN for the sequence that is all padding (every score -inf, "
                                   "softmax 0/0).", "replace NaN weights by 0, e.g. weights.nan_to_num(0.0): "
                                   "a query with nothing to attend to returns zeros, as PyTorch does.")
            return CheckResult(ATTENTION_NAME, False, f"on {where}: your output contains NaN.", hint)
        if torch.allclose(got, expected, atol=ATTENTION_TOLERANCE, rtol=ATTENTION_TOLERANCE):
            lines.append(f"{where}: {difference_bound((got - expected).abs().max(), ATTENTION_TOLERANCE / 10)}")
            continue
        for mistake, wrong in ATTENTION_MISTAKES.items():
            with torch.no_grad():
                candidate = wrong(q, k, v, mask).nan_to_num(0.0)
            if torch.allclose(got.nan_to_num(0.0), candidate, atol=1e-5, rtol=1e-5):
                return CheckResult(ATTENTION_NAME, False, f"on {where}: {mistake}.", hint)
        return CheckResult(ATTENTION_NAME, False, f"on {where}: your output differs from PyTorch's "
                           f"scaled_dot_product_attention by up to {float((got - expected).abs().max()):.2e}.", hint)
    return CheckResult(ATTENTION_NAME, True, "equal to torch.nn.functional.scaled_dot_product_attention "
                       f"within {ATTENTION_TOLERANCE:g}:\n  " + "\n  ".join(lines))


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


def _call_watching_embeddings(exercise: str, fn, model, *args):
    """``call_or_verdict(fn, model, *args)``, and whether ``fn`` ran ``model.embeddings``."""
    called = []
    module = model.embeddings
    original = module.forward

    def spy(*inner, **options):
        called.append(True)
        return original(*inner, **options)

    module.forward = spy  # an instance attribute: module(...) and module.forward(...) both reach it
    try:
        out, failed = call_or_verdict(exercise, fn, model, *args)
    finally:
        del module.forward
    return out, failed, bool(called)


def check_build_input_embeddings(fn) -> CheckResult:
    """``fn(model, input_ids, token_type_ids)`` must equal the model's own embedding module
    (eval mode) to within ``EMBEDDING_TOLERANCE`` on four kinds of input."""
    import torch

    exercise = EMBEDDINGS_NAME
    hint = ("look the ids up in model.embeddings.word_embeddings.weight, token_type_embeddings and "
            "position_embeddings (positions 0..length-1), add the three, then apply "
            "model.embeddings.LayerNorm.")
    lines = []
    for name, model, ids, types in _embedding_cases():
        with torch.no_grad():
            expected = model.embeddings(input_ids=ids, token_type_ids=types)
            out, failed, called = _call_watching_embeddings(exercise, fn, model, ids.clone(), types.clone())
        if called:
            return CheckResult(exercise, False, "your function ran model.embeddings (directly or "
                               "through the model), which is what the exercise asks you to rebuild.",
                               "use only the tables: model.embeddings.word_embeddings.weight, "
                               "token_type_embeddings.weight, position_embeddings.weight and the "
                               "LayerNorm module.")
        if failed is None:  # a failing CheckResult is falsy: compare with None
            failed = shape_verdict(exercise, out, expected, f"on {name}, expected", hint)
        if failed is not None:
            return failed
        try:
            out = out.detach().float().cpu()
            error = float((out - expected).abs().max())
        except Exception as problem:  # e.g. a tensor on the meta device has no values
            return CheckResult(exercise, False, f"on {name}, your output cannot be compared "
                               f"({type(problem).__name__}: {problem}); return an ordinary tensor "
                               "on the CPU.", hint)
        if not torch.allclose(out, expected, atol=EMBEDDING_TOLERANCE, rtol=EMBEDDING_TOLERANCE):
            with torch.no_grad():
                for mistake, wrong in _embedding_mistakes(model, ids, types).items():
                    if torch.allclose(out, wrong, atol=1e-5, rtol=1e-5):
                        return CheckResult(exercise, False, f"on {name}: {mistake}.", hint)
            return CheckResult(exercise, False, f"on {name}, the largest difference from the "
                               f"model's own embeddings is {error:.2e}.", hint)
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
)
