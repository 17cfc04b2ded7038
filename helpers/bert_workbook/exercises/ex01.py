"""Notebook 01's exercises: WordPiece by hand, and the first-subword mask."""

from __future__ import annotations

import random
from functools import lru_cache
from types import MappingProxyType

from bert_workbook import wordpiece as _wordpiece
from bert_workbook.exercises.core import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    as_list,
    call_or_verdict,
    nudge,
)


@lru_cache(maxsize=1)
def wordpiece_held_out_words(n: int = 1000) -> tuple[str, ...]:
    """``n`` distinct words from IMDB test reviews, half of which split into several pieces.

    These are words the notebook never shows, normalized and pre-tokenized as BERT does, so the
    learner's function sees exactly what the library's WordPiece model sees.
    """
    from bert_workbook.assets import load_tokenizer
    from bert_workbook.data import load_course_dataset
    from bert_workbook.wordpiece import distinct_words

    tokenizer = load_tokenizer("embedded")
    texts = load_course_dataset("imdb")["test"]["text"][:3000]
    words = distinct_words(tokenizer, texts, exclude=NOTEBOOK_01_WORDS)
    rng = random.Random(HELD_OUT_SEED)
    rng.shuffle(words)
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    multi = [w for w, ids in zip(words, pieces) if len(ids) > 1][: n // 2]
    single = [w for w, ids in zip(words, pieces) if len(ids) == 1][: n - len(multi)]
    if len(multi) + len(single) < n:
        raise RuntimeError(f"only {len(multi) + len(single)} held-out words, wanted {n}")
    return tuple(sorted(multi + single))


# Normalized words that must become [UNK] as a whole: an unknown character inside, or too long.
WORDPIECE_EDGE_WORDS = ("wow🙂", "🙂", "ᚠᚢᚦ", "a" * 150, "ab" * 50, "ab" * 50 + "c")  # 100 chars: split; 101: [UNK]


NOTEBOOK_01_WORDS = frozenset(
    {"unaffable", "tokenization", "hyperparameterization", "the", "cat", "running"}
)


HINT_WORDPIECE = nudge("ex01.wordpiece")
HINT_FIRST_SUBWORD = nudge("ex01.first_subword_mask")


def check_wordpiece(fn, n_words: int = 1000) -> CheckResult:
    """Compare ``fn(word, vocab)`` with the library tokenizer on held-out words and edge cases."""
    from bert_workbook.assets import load_tokenizer

    exercise = "Exercise 1 (WordPiece)"
    tokenizer = load_tokenizer("embedded")
    vocab = MappingProxyType(tokenizer.get_vocab())  # read-only: no call can change what the next one sees
    words = wordpiece_held_out_words(n_words) + WORDPIECE_EDGE_WORDS
    expected_pieces = {word: tokenizer.tokenize(word) for word in words}
    wrong = []
    for word in words:
        got, failed = call_or_verdict(exercise, fn, word, vocab)
        if failed is not None:  # (a failing CheckResult is falsy)
            return failed
        if not isinstance(got, (list, tuple)):
            return CheckResult(exercise, False, f"your function returned {type(got).__name__} for {word!r}; "
                               "return a list of token strings, e.g. ['token', '##ization'].", HINT_WORDPIECE)
        if list(got) != expected_pieces[word]:
            wrong.append((word, got, expected_pieces[word]))
    multi = sum(len(pieces) > 1 for pieces in expected_pieces.values())
    agree = len(words) - len(wrong)
    summary = (
        f"{agree}/{len(words)} held-out words agree with the library tokenizer "
        f"({100 * agree / len(words):.1f}%; {multi} of the words split into several pieces)."
    )
    if not wrong:
        return CheckResult(exercise, True, summary)
    examples = "; ".join(f"{w!r}: got {g}, expected {e}" for w, g, e in wrong[:3])
    return CheckResult(exercise, False, f"{summary} For example {examples}.", HINT_WORDPIECE)


FIRST_SUBWORD_SENTENCES = (
    ("Tokenizers split unaffable words into pieces.", None),
    ("Mt. Sanitas is in Sunshine Canyon.", None),
    ("New York New York", None),
    ("Hyperparameterization!", "Re-tokenization, again: unaffable."),
    ("a", "b"),
)


def check_first_subword_mask(fn) -> CheckResult:
    """Compare ``fn(word_ids)`` with the reference on sentences, pairs and held-out reviews."""
    from bert_workbook.assets import load_tokenizer
    from bert_workbook.data import load_course_dataset
    from bert_workbook.wordpiece import first_subword_mask

    exercise = "Exercise 2 (first-subword mask)"
    tokenizer = load_tokenizer("embedded")
    reviews = load_course_dataset("rotten_tomatoes")["test"]["text"][:300]
    cases = list(FIRST_SUBWORD_SENTENCES) + [(text, None) for text in reviews]
    for text, pair in cases:
        word_ids = tokenizer(text, pair, truncation=True, max_length=64).word_ids()
        got, failed = call_or_verdict(exercise, fn, list(word_ids))
        if failed is not None:  # (a failing CheckResult is falsy)
            return failed
        expected = first_subword_mask(word_ids)
        values = as_list(got)
        if values is None or [bool(x) for x in values] != expected:
            where = f"{text!r}" + (f" + {pair!r}" if pair else "")
            return CheckResult(exercise, False, f"wrong mask for {where}: word_ids {word_ids}, got {got}, "
                               f"expected {expected}.", HINT_FIRST_SUBWORD)
    return CheckResult(
        exercise, True, f"{len(cases)} encodings (single sentences, pairs, truncated reviews) agree."
    )


wordpiece = Exercise(
    name="Exercise 1 (WordPiece)",
    checker=check_wordpiece,
    hints=(
        "Work from left to right: at each position, find the longest piece of the rest of the word "
        "that is in the vocabulary, and take it.",
        "Every piece after the first is looked up with the '##' prefix ('##ization'). If at some "
        "position no piece matches at all, the whole word becomes ['[UNK]'], not just that part; "
        "so does a word of more than 100 characters.",
        "start = 0; while start < len(word): for end from len(word) down to start + 1, piece = "
        "word[start:end], prefixed with '##' when start > 0; take the first piece in vocab (none: "
        "return ['[UNK]']); start = end.",
    ),
    reference=_wordpiece.wordpiece_tokenize_word,
    solution_code='''
def wordpiece_tokenize_word(word, vocab, unk_token="[UNK]", max_chars=100):
    """Split one normalized word into WordPiece tokens, longest match first."""
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):  # the longest piece first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:  # no piece of the rest is in the vocabulary: the whole word is unknown
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces
''',
)

first_subword_mask = Exercise(
    name="Exercise 2 (first-subword mask)",
    checker=check_first_subword_mask,
    hints=(
        "word_ids has one entry per token: the index of the word it came from, or None for a "
        "special token.",
        "A token starts a word when its word id is not None and differs from the previous token's "
        "word id. Return one True/False per token.",
    ),
    reference=_wordpiece.first_subword_mask,
    solution_code='''
def first_subword_mask(word_ids):
    """True at the first token of each word; False on continuations and special tokens."""
    mask, previous = [], None
    for word_id in word_ids:
        mask.append(word_id is not None and word_id != previous)
        previous = word_id
    return mask
''',
)
