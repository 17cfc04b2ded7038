import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_workbook import wordpiece as wp


@pytest.mark.parametrize(
    "word, pieces",
    [
        ("the", ["the"]),
        ("unaffable", ["una", "##ffa", "##ble"]),  # greedy, not un ##aff ##able
        ("tokenization", ["token", "##ization"]),
        ("🙂", ["[UNK]"]),
        ("", []),
    ],
)
def test_reference_wordpiece_on_known_words(vocab, word, pieces):
    assert wp.wordpiece_tokenize_word(word, vocab) == pieces


def test_whole_word_becomes_unk_when_any_part_is_unknown(vocab):
    assert wp.wordpiece_tokenize_word("abc🙂", vocab) == ["[UNK]"]
    assert wp.wordpiece_tokenize_word("a" * 101, vocab) == ["[UNK]"]
    assert wp.wordpiece_tokenize_word("ab", vocab, max_chars=1) == ["[UNK]"]


def test_reference_wordpiece_rejects_non_strings(vocab):
    with pytest.raises(TypeError, match="word"):
        wp.wordpiece_tokenize_word(["the"], vocab)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789éüß", min_size=1, max_size=25))
def test_reference_wordpiece_equals_library_on_any_normalized_word(tokenizer, vocab, text):
    for word in wp.split_into_words(tokenizer, text):
        assert wp.wordpiece_tokenize_word(word, vocab) == tokenizer.tokenize(word)


def test_split_into_words_normalizes_like_bert(tokenizer):
    assert wp.split_into_words(tokenizer, "Naïve, CAFÉ!") == ["naive", ",", "cafe", "!"]
    with pytest.raises(TypeError):
        wp.split_into_words(tokenizer, None)


def test_token_rows_for_a_pair(tokenizer):
    rows = wp.token_rows(tokenizer, "Mt. Sanitas", "It rains.")
    assert [r["token"] for r in rows] == ["[CLS]", "mt", ".", "san", "##itas", "[SEP]", "it", "rains", ".", "[SEP]"]
    assert [r["segment"] for r in rows] == [0] * 6 + [1] * 4
    assert [r["word_id"] for r in rows] == [None, 0, 1, 2, 2, None, 0, 1, 2, None]
    assert "".join(r["text"] for r in rows[3:5]) == "Sanitas"
    assert rows[7]["text"] == "rains"  # offsets of sentence B point into sentence B
    assert [r["position"] for r in rows] == list(range(10))


def test_token_rows_rejects_non_strings(tokenizer):
    with pytest.raises(TypeError):
        wp.token_rows(tokenizer, 42)
    with pytest.raises(TypeError):
        wp.token_rows(tokenizer, "a", text_pair=["b"])


def test_format_token_rows_aligns_columns(tokenizer):
    text = wp.format_token_rows(wp.token_rows(tokenizer, "Hi"), ["token", "word_id"])
    assert text.splitlines() == ["token  word_id", "[CLS]  -", "hi     0", "[SEP]  -"]
    assert wp.format_token_rows([]) == "(no tokens)"


def test_unk_rate(tokenizer):
    rate, total = wp.unk_rate(tokenizer, ["hello 🙂 world", "ok"])
    assert (rate, total) == (0.25, 4)
    with pytest.raises(ValueError, match="empty"):
        wp.unk_rate(tokenizer, [])


def test_vocabulary_breakdown_counts_every_entry(vocab):
    counts = wp.vocabulary_breakdown(vocab)
    assert sum(counts.values()) == len(vocab)
    assert counts["special [..]"] == 5 and counts["unused slots"] == 994


def test_first_subword_mask_on_a_pair(tokenizer):
    word_ids = tokenizer("unaffable cats", "cats").word_ids()
    assert word_ids == [None, 0, 0, 0, 1, None, 0, None]
    assert wp.first_subword_mask(word_ids) == [False, True, False, False, True, False, True, False]


@given(st.lists(st.integers(1, 4), min_size=0, max_size=30))
def test_first_subword_mask_marks_exactly_one_token_per_word(pieces_per_word):
    word_ids = [None] + [w for w, n in enumerate(pieces_per_word) for _ in range(n)] + [None]
    mask = wp.first_subword_mask(word_ids)
    assert len(mask) == len(word_ids)
    assert sum(mask) == len(pieces_per_word)
    assert not mask[0] and not mask[-1]


@pytest.mark.parametrize("bad", ["abc", None, [0, -1], [0, 1.5]])
def test_first_subword_mask_rejects_bad_input(bad):
    with pytest.raises((TypeError, ValueError)):
        wp.first_subword_mask(bad)


def test_merge_scores_prefer_surprising_pairs_over_frequent_ones():
    words = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}  # the Hugging Face course's corpus
    rows = wp.merge_scores({wp.character_split(w): n for w, n in words.items()})
    assert rows[0]["pair"] == "##g + ##s" and rows[0]["score"] == pytest.approx(5 / (20 * 5))
    assert rows[0]["merged"] == "##gs"
    most_frequent = max(rows, key=lambda row: row["count"])
    assert most_frequent["pair"] == "##u + ##g" and most_frequent["count"] == 20
    assert wp.character_split("hug") == ("h", "##u", "##g")
    for bad in [{}, {"hug": 1}, {("h", "##u"): 0}]:
        with pytest.raises(ValueError):
            wp.merge_scores(bad)
    with pytest.raises(ValueError):
        wp.character_split("")
