"""Notebook 07's exercise: word labels aligned to WordPiece tokens."""

from __future__ import annotations

from bert_workbook import ner as _ner
from bert_workbook.exercises.core import (
    CheckResult,
    Exercise,
    as_int,
    as_list,
    call_or_verdict,
    named_mistake,
    nudge,
)


def _alignment_cases(tokenizer):
    """(name, word_labels, word_ids, label_all_subwords) cases for ``check_align_labels``."""
    from bert_workbook.data import CONLL_TAGS
    from bert_workbook.ner import sequence_word_ids

    tag = {name: i for i, name in enumerate(CONLL_TAGS)}

    def ids(tags):
        return [tag[t] for t in tags]

    def split(words):
        return tokenizer(words, is_split_into_words=True).word_ids()

    lecture = (["Mt.", "Sanitas", "is", "in", "Sunshine", "Canyon"],
               ids(["B-LOC", "I-LOC", "O", "O", "B-LOC", "I-LOC"]))
    long_words = (["Unbelievably", ",", "Grzegorz", "Brzęczyszczykiewicz", "joined", "U.S.", "Steel", "."],
                  ids(["O", "O", "B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O"]))
    repeated = (["Paris", "Hilton", "left", "Paris", "for", "Paris", "Texas"],
                ids(["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "I-LOC"]))
    truncated = tokenizer(long_words[0], is_split_into_words=True, truncation=True, max_length=9).word_ids()
    pair = sequence_word_ids(tokenizer("Where was Brzęczyszczykiewicz born ?", "Sunshine Canyon , Colorado"), 1)
    cases = []
    for every in (False, True):
        mode = "every subword labelled" if every else "first subword labelled"
        cases += [
            (f"the lecture example ({mode})", lecture[1], split(lecture[0]), every),
            (f"long words and punctuation ({mode})", long_words[1], split(long_words[0]), every),
            (f"repeated words ({mode})", repeated[1], split(repeated[0]), every),
            (f"a sentence truncated to 9 tokens ({mode})", long_words[1], truncated, every),
            (f"the second text of a pair ({mode})", ids(["B-LOC", "I-LOC", "O", "B-LOC"]), pair, every),
        ]
    return cases


ALIGN_NAME = "Exercise (align_labels_to_tokens)"
HINT_ALIGN = nudge("ex07.align_labels")


def _alignment_mistakes(labels, word_ids, every, b_to_i, expected) -> dict:
    """What the usual wrong alignments give on one case, keyed by the verdict's words."""
    from bert_workbook.ner import IGNORE_INDEX, align_labels_to_tokens

    by_position = [labels[i] if i < len(labels) else IGNORE_INDEX for i in range(len(word_ids))]
    return {
        "labels were matched to tokens by position; tokens and words do not line up once a "
        "word splits into several pieces, so use word_ids": by_position,
        "labels were matched by position after [CLS]; use word_ids instead": [IGNORE_INDEX] + by_position[:-1],
        "the B- to I- rule is missing: a continuation piece of a B-X word must get I-X, since "
        "only the first piece begins the entity":
            align_labels_to_tokens(labels, word_ids, label_all_subwords=True, b_to_i={}),
        "special tokens ([CLS], [SEP], the other text of a pair) need -100":
            [e if w is not None else 0 for e, w in zip(expected, word_ids)],
        "continuation pieces got a label in first-subword mode; they need -100":
            align_labels_to_tokens(labels, word_ids, label_all_subwords=True, b_to_i=b_to_i),
        "the b_to_i mapping you were given was not used (B-X -> I-X computed as CoNLL's "
        "id + 1, which other tag sets do not follow)": [
            IGNORE_INDEX if w is None else (labels[w] if i == 0 or word_ids[i - 1] != w or not every
                                            else (labels[w] + 1 if labels[w] % 2 == 1 else labels[w]))
            for i, w in enumerate(word_ids)],
    }


def check_align_labels(fn) -> CheckResult:
    """``fn(word_labels, word_ids, label_all_subwords=..., b_to_i=...)`` must equal
    :func:`bert_workbook.ner.align_labels_to_tokens` on multi-piece words, punctuation, repeated
    words, truncation and the second text of a pair, in both modes; it names the position-aligned
    bug, a forgotten B-to-I rule, labelled special tokens, labelled continuation pieces, None
    instead of -100, and a b_to_i that was not used."""
    from bert_workbook.assets import load_tokenizer
    from bert_workbook.data import CONLL_TAGS
    from bert_workbook.ner import align_labels_to_tokens, b_to_i_ids

    tokenizer = load_tokenizer("embedded")
    conll_b_to_i = b_to_i_ids(CONLL_TAGS)
    # a tag set numbered differently from CoNLL's (B-X is not I-X minus one): the b_to_i given
    # must be used, not CoNLL's numbering
    other_tags = ["O", "I-PER", "I-LOC", "B-LOC", "B-PER"]
    other = ("a tag set numbered differently from CoNLL's (every subword labelled)",
             [4, 1, 0, 3, 2], tokenizer(["Grzegorz", "Brzęczyszczykiewicz", "visited", "Unbelievablyton", "Heights"],
                                        is_split_into_words=True).word_ids(), True)
    cases = [(*case, conll_b_to_i) for case in _alignment_cases(tokenizer)]
    cases.append((*other, b_to_i_ids(other_tags)))
    for what, labels, word_ids, every, b_to_i in cases:
        expected = align_labels_to_tokens(labels, word_ids, label_all_subwords=every, b_to_i=b_to_i)
        out, failed = call_or_verdict(ALIGN_NAME, fn, list(labels), list(word_ids),
                                      label_all_subwords=every, b_to_i=b_to_i)
        if failed is not None:
            return failed
        values = as_list(out)
        if values is not None and any(x is None for x in values):
            return CheckResult(ALIGN_NAME, False, f"{what}: some tokens got None; a token without a label needs "
                               "-100, the label the loss ignores.", HINT_ALIGN)
        got = None if values is None else [as_int(x) for x in values]
        if got is None or None in got:
            return CheckResult(ALIGN_NAME, False, f"{what}: expected a list of ints (one label id per token), got "
                               f"{type(out).__name__}" + (" holding other values." if values is not None else "."),
                               HINT_ALIGN)
        if got == expected:
            continue
        mistake = named_mistake(got, _alignment_mistakes(labels, word_ids, every, b_to_i, expected),
                                lambda a, b: a == b)
        if mistake:
            return CheckResult(ALIGN_NAME, False, f"{what}: {mistake}.", HINT_ALIGN)
        return CheckResult(ALIGN_NAME, False, f"{what}: word_ids {list(word_ids)}, labels {list(labels)}: "
                           f"got {got}, expected {expected}.", HINT_ALIGN)
    return CheckResult(ALIGN_NAME, True, f"matches the reference on {len(cases)} cases: long words, punctuation, "
                       "repeated words, truncation and a sentence pair, with first-subword and every-subword "
                       "labels, and a tag set numbered differently from CoNLL's.")


align_labels = Exercise(
    name=ALIGN_NAME,
    checker=check_align_labels,
    hints=(
        "Walk over word_ids, one entry per token: it tells you which word the token came from "
        "(None for special tokens).",
        "None -> -100. A word id different from the previous token's -> that word's label. The same "
        "word id again -> -100, or with label_all_subwords the word's label through b_to_i.",
        "b_to_i maps a B-X id to its I-X id: use the mapping you are given (b_to_i.get(label, "
        "label)), never a rule about the numbers.",
    ),
    reference=_ner.align_labels_to_tokens,
    solution_code='''
def align_labels_to_tokens(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    """One label per token: -100 for special tokens, the word's label on its first piece, and
    -100 (or, with label_all_subwords, the label with B-X turned into I-X) on the other pieces."""
    aligned, previous = [], None
    for word in word_ids:
        if word is None:
            aligned.append(-100)
        elif word != previous:
            aligned.append(word_labels[word])
        elif label_all_subwords:
            aligned.append(b_to_i.get(word_labels[word], word_labels[word]))
        else:
            aligned.append(-100)
        previous = word
    return aligned
''',
)
