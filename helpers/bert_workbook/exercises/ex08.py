"""Notebook 08's exercise: the parameters of ALBERT's factorized embeddings."""

from __future__ import annotations

from bert_workbook import family as _family
from bert_workbook.exercises.core import (
    CheckResult,
    Exercise,
    as_int,
    call_or_verdict,
    named_mistake,
    nudge,
)


def _albert_embedding_count(vocab_size: int, embedding_size: int, hidden_size: int) -> int:
    """The token-embedding parameters of a real ALBERT built with these sizes: its word
    embeddings plus the projection up to the hidden size (counted on the meta device)."""
    from transformers import AlbertConfig

    from bert_workbook.family import build_model

    config = AlbertConfig(vocab_size=vocab_size, embedding_size=embedding_size,
                          hidden_size=hidden_size, num_attention_heads=1, num_hidden_layers=1,
                          intermediate_size=hidden_size)
    model = build_model(config)
    return (model.embeddings.word_embeddings.weight.numel()
            + sum(p.numel() for p in model.encoder.embedding_hidden_mapping_in.parameters()))


FACTORIZED_NAME = "Exercise (factorized_embedding_parameters)"
HINT_FACTORIZED = nudge("ex08.factorized_embeddings")


def _factorized_mistakes(v: int, e: int, h: int) -> dict:
    """What the usual wrong counts give, keyed by the verdict's words."""
    return {
        "that is BERT's unfactorized table (vocab_size x hidden_size)": v * h,
        "the projection from embedding_size to hidden_size is missing": v * e,
        "the projection's bias (hidden_size numbers) is missing": v * e + e * h,
        "the projection has hidden_size x hidden_size weights; it maps embedding_size to "
        "hidden_size": v * e + h * h + h,
        "the bias was counted with embedding_size numbers; the projection's output, and its bias, "
        "have hidden_size": v * e + e * h + e,
    }


def check_factorized_embeddings(fn) -> CheckResult:
    """``fn(vocab_size, embedding_size, hidden_size)`` must give the number of parameters of
    ALBERT's factorized token embeddings, counted on real ALBERT models of several sizes; it
    names the usual slips (no factorization, no projection, no bias, the projection's shape)."""
    for vocab_size, embedding_size, hidden_size in [(30000, 128, 768), (1000, 16, 64), (50, 8, 8),
                                                    (32000, 256, 4096), (7, 3, 5)]:
        expected = _albert_embedding_count(vocab_size, embedding_size, hidden_size)
        got, failed = call_or_verdict(FACTORIZED_NAME, fn, vocab_size, embedding_size, hidden_size)
        if failed is not None:
            return failed
        whole = as_int(got)
        if whole is None:
            return CheckResult(FACTORIZED_NAME, False, f"expected a whole number, got {got!r:.60}.", HINT_FACTORIZED)
        if whole == expected:
            continue
        why = named_mistake(whole, _factorized_mistakes(vocab_size, embedding_size, hidden_size),
                            lambda a, b: a == b)
        case = f"vocab_size={vocab_size}, embedding_size={embedding_size}, hidden_size={hidden_size}"
        return CheckResult(FACTORIZED_NAME, False, f"{case}: expected {expected:,}, got {whole:,}"
                           + (f": {why}." if why else "."), HINT_FACTORIZED)
    return CheckResult(FACTORIZED_NAME, True, "matches the parameter count of real ALBERT embeddings at "
                       "five sizes, from 30,000 x 128 -> 768 down to 7 x 3 -> 5.")


factorized_embeddings = Exercise(
    name=FACTORIZED_NAME,
    checker=check_factorized_embeddings,
    hints=(
        "ALBERT stores the token table at a small width (embedding_size) and projects it up to "
        "the model's width (hidden_size).",
        "Count the table (vocab_size x embedding_size) and the projection, an "
        "nn.Linear(embedding_size, hidden_size): its weight matrix and its bias.",
    ),
    reference=_family.factorized_embedding_parameters,
    solution_code='''
def factorized_embedding_parameters(vocab_size: int, embedding_size: int, hidden_size: int) -> int:
    """Parameters of ALBERT's token embeddings: the table and the projection up to hidden_size."""
    table = vocab_size * embedding_size
    projection = embedding_size * hidden_size + hidden_size  # weights and bias
    return table + projection
''',
)
