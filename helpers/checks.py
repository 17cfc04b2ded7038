"""Exercise checks: each ``check_*`` runs a learner's function against the reference behaviour.

A check returns a :class:`CheckResult` whose text says what passed or failed and gives a hint;
it never raises for a wrong answer, so the notebook keeps running. ``CheckResult.choose`` lets
later cells fall back to the reference implementation when the exercise is not solved yet.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

HELD_OUT_SEED = 2024


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one exercise check."""

    exercise: str
    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = "PASSED" if self.passed else "NOT YET"
        text = f"[{mark}] {self.exercise}: {self.message}"
        if self.hint and not self.passed:
            text += f"\nHint: {self.hint}"
        return text

    __repr__ = __str__

    def choose(self, mine, reference):
        """``(mine, note)`` when the check passed, else ``(reference, note)``: a safe fallback."""
        if self.passed:
            return mine, f"Using your implementation for {self.exercise}."
        return reference, (
            f"Using the reference implementation for {self.exercise} "
            f"({reference.__module__}.{reference.__qualname__}): your version has not passed its "
            "check yet, so the cells below use the reference and still run."
        )


def _call_or_verdict(exercise: str, fn, *args):
    """Run ``fn(*args)``; return ``(output, None)`` or ``(None, failing CheckResult)``."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, CheckResult(
            exercise, False, "not implemented yet.", "replace the `raise NotImplementedError`."
        )
    except Exception as error:  # a learner's bug: report it, do not crash the notebook
        return None, CheckResult(
            exercise, False, f"your function raised {type(error).__name__}: {error}"
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
WORDPIECE_EDGE_WORDS = ("wow🙂", "🙂", "ᚠᚢᚦ", "a" * 150)

NOTEBOOK_01_WORDS = frozenset(
    {"unaffable", "tokenization", "hyperparameterization", "the", "cat", "running"}
)


def check_wordpiece(fn, n_words: int = 1000) -> CheckResult:
    """Compare ``fn(word, vocab)`` with the library tokenizer on held-out words and edge cases."""
    from bert_workbook.assets import load_tokenizer

    exercise = "Exercise 1 (WordPiece)"
    tokenizer = load_tokenizer("embedded")
    vocab = tokenizer.get_vocab()
    words = wordpiece_held_out_words(n_words) + WORDPIECE_EDGE_WORDS
    wrong = []
    for word in words:
        got, failed = _call_or_verdict(exercise, fn, word, vocab)
        if failed is not None:  # (a failing CheckResult is falsy)
            return failed
        if got is None:
            return CheckResult(
                exercise, False, f"your function returned None for {word!r}.",
                "did you forget the `return` statement?",
            )
        expected = tokenizer.tokenize(word)
        if list(got or []) != expected:
            wrong.append((word, got, expected))
    multi = sum(len(tokenizer.tokenize(w)) > 1 for w in words)
    agree = len(words) - len(wrong)
    summary = (
        f"{agree}/{len(words)} held-out words agree with the library tokenizer "
        f"({100 * agree / len(words):.1f}%; {multi} of the words split into several pieces)."
    )
    if not wrong:
        return CheckResult(exercise, True, summary)
    examples = "; ".join(f"{w!r}: got {g}, expected {e}" for w, g, e in wrong[:3])
    return CheckResult(
        exercise,
        False,
        f"{summary} For example {examples}.",
        "take the longest vocabulary entry that starts the remaining text; pieces after the "
        "first need the '##' prefix; if nothing matches, the whole word is [UNK].",
    )


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
        got, failed = _call_or_verdict(exercise, fn, list(word_ids))
        if failed is not None:  # (a failing CheckResult is falsy)
            return failed
        expected = first_subword_mask(word_ids)
        if got is None or [bool(x) for x in got] != expected:
            where = f"{text!r}" + (f" + {pair!r}" if pair else "")
            return CheckResult(
                exercise,
                False,
                f"wrong mask for {where}: word_ids {word_ids}, got {got}, expected {expected}.",
                "a token starts a word when its word id is not None and differs from the "
                "previous token's word id.",
            )
    return CheckResult(
        exercise, True, f"{len(cases)} encodings (single sentences, pairs, truncated reviews) agree."
    )
