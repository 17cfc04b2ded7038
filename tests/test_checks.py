"""Every exercise check passes on the reference and fails on a stub and on plausible mistakes."""

import pytest

from bert_workbook import wordpiece as wp
from bert_workbook.exercises import core, ex01


def stub(*args):
    raise NotImplementedError


def shortest_match_first(word, vocab, unk_token="[UNK]", max_chars=100):
    pieces, start = [], 0
    while start < len(word):
        for end in range(start + 1, len(word) + 1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            return [unk_token]
    return pieces


def without_prefix(word, vocab, unk_token="[UNK]", max_chars=100):
    return [p.removeprefix("##") for p in wp.wordpiece_tokenize_word(word, vocab)]


def unk_only_the_piece(word, vocab, unk_token="[UNK]", max_chars=100):
    """Emits [UNK] for the unmatched character instead of for the whole word."""
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            pieces.append(unk_token)
            start += 1
    return pieces


def test_wordpiece_check_passes_on_the_reference():
    result = ex01.check_wordpiece(wp.wordpiece_tokenize_word)
    assert result.passed
    assert "1006/1006" in str(result) and "100.0%" in str(result)


@pytest.mark.parametrize(
    "wrong",
    [stub, shortest_match_first, without_prefix, unk_only_the_piece, lambda w, v: None,
     lambda w, v: 1 / 0, lambda w, v: 7, lambda w, v: w],
)
def test_wordpiece_check_fails_on_wrong_answers(wrong):
    result = ex01.check_wordpiece(wrong)
    assert not result.passed
    assert "NOT YET" in str(result)


@pytest.mark.parametrize("check", [ex01.check_wordpiece, ex01.check_first_subword_mask])
def test_checks_say_when_the_exercise_is_not_started(check):
    assert "not implemented yet" in str(check(stub))


def test_held_out_words_are_unseen_and_half_split():
    words = ex01.wordpiece_held_out_words()
    assert len(words) == len(set(words)) == 1000
    assert not set(words) & ex01.NOTEBOOK_01_WORDS


def test_no_length_cap_is_caught(vocab):
    def no_cap(word, vocab, unk_token="[UNK]", max_chars=100):
        return wp.wordpiece_tokenize_word(word, vocab, max_chars=10_000)

    assert not ex01.check_wordpiece(no_cap).passed


def test_first_subword_check_passes_on_the_reference():
    assert ex01.check_first_subword_mask(wp.first_subword_mask).passed


def every_token_of_a_word(word_ids):
    return [w is not None for w in word_ids]


def first_time_seen(word_ids):
    """Wrong on sentence pairs: word ids restart at 0 in the second sentence."""
    seen, mask = set(), []
    for w in word_ids:
        mask.append(w is not None and w not in seen)
        seen.add(w)
    return mask


@pytest.mark.parametrize(
    "wrong", [stub, every_token_of_a_word, first_time_seen, lambda ids: None, lambda ids: 3]
)
def test_first_subword_check_fails_on_wrong_answers(wrong):
    assert not ex01.check_first_subword_mask(wrong).passed


def test_choose_falls_back_to_the_reference():
    passed = core.CheckResult("E", True, "ok")
    failed = core.CheckResult("E", False, "no", "hint")
    mine, reference = (lambda: 1), wp.first_subword_mask
    assert passed.choose(mine, reference)[0] is mine
    chosen, note = failed.choose(mine, reference)
    assert chosen is reference and "bert_workbook.wordpiece.first_subword_mask" in note
    assert "Hint: hint" in str(failed) and "Hint" not in str(passed)
    assert bool(passed) and not bool(failed)
