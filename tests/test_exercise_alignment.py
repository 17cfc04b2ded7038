"""Notebook 07's check: each usual mistake of the label alignment, written out here on its own,
gets its own name (and no other mistake's); right answers written in other ways pass."""

import numpy as np
import pytest

from bert_workbook.data import CONLL_TAGS
from bert_workbook.exercises import ex07


def by_position(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return [word_labels[i] if i < len(word_labels) else -100 for i in range(len(word_ids))]


def by_position_after_cls(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return [-100] + [word_labels[i] if i < len(word_labels) else -100 for i in range(len(word_ids) - 1)]


def _walk(word_labels, word_ids, every, to_inside, special=-100):
    """The walk over word_ids; the mistakes below change one of its choices."""
    out, previous = [], None
    for word in word_ids:
        if word is None:
            out.append(special)
        elif word != previous:
            out.append(word_labels[word])
        else:
            out.append(to_inside(word_labels[word]) if every else -100)
        previous = word
    return out


def no_b_to_i(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return _walk(word_labels, word_ids, label_all_subwords, lambda label: label)


def specials_as_outside(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return _walk(word_labels, word_ids, label_all_subwords, lambda label: b_to_i.get(label, label), special=0)


def every_piece_always(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return _walk(word_labels, word_ids, True, lambda label: b_to_i.get(label, label))


def conll_numbering(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return _walk(word_labels, word_ids, label_all_subwords, lambda label: label + 1 if label % 2 == 1 else label)


def none_for_special_tokens(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return _walk(word_labels, word_ids, label_all_subwords, lambda label: b_to_i.get(label, label), special=None)


def tag_names(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    labels = _walk(word_labels, word_ids, label_all_subwords, lambda label: b_to_i.get(label, label))
    return [CONLL_TAGS[label] if label >= 0 else "-100" for label in labels]


def changes_b_to_i(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    b_to_i[0] = 0  # the caller's mapping is changed
    return _walk(word_labels, word_ids, label_all_subwords, lambda label: b_to_i.get(label, label))


ALIGNMENT_MISTAKES = {
    by_position: "matched to tokens by position",
    by_position_after_cls: "matched by position after [CLS]",
    no_b_to_i: "the B- to I- rule is missing",
    specials_as_outside: "special tokens ([CLS], [SEP], the other text of a pair) need -100",
    every_piece_always: "continuation pieces got a label in first-subword mode",
    conll_numbering: "the b_to_i mapping you were given was not used",
    none_for_special_tokens: "some tokens got None",
    tag_names: "expected a list of ints",
    changes_b_to_i: "changed `b_to_i` in place",
}


@pytest.mark.parametrize("mistake", ALIGNMENT_MISTAKES, ids=lambda f: f.__name__)
def test_alignment_names_each_mistake_and_only_it(mistake):
    result = ex07.align_labels.check(mistake)
    assert not result.passed
    assert ALIGNMENT_MISTAKES[mistake] in result.message, result
    others = [words for other, words in ALIGNMENT_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def with_a_comprehension_as_array(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    """Right, written another way: a comprehension over (previous, current) pairs, as an array."""
    b_to_i = b_to_i or {}
    pairs = zip([None, *word_ids[:-1]], word_ids)
    return np.array([-100 if word is None else word_labels[word] if word != before
                     else b_to_i.get(word_labels[word], word_labels[word]) if label_all_subwords else -100
                     for before, word in pairs])


def as_a_tuple(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return tuple(ex07.align_labels.reference(word_labels, word_ids, label_all_subwords=label_all_subwords,
                                             b_to_i=b_to_i))


@pytest.mark.parametrize("answer", [ex07.align_labels.reference, with_a_comprehension_as_array, as_a_tuple])
def test_alignment_passes_right_answers_written_differently(answer):
    result = ex07.align_labels.check(answer)
    assert result.passed, result
