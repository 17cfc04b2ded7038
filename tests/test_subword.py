"""Subword algorithms trained here, GPT-2's byte-level BPE, and the comparison measures."""

import pytest

from bert_workbook import assets, subword

TEXTS = [
    "The film was unbelievably good, and the acting was better than expected.",
    "Shares of the company rose 3.5 percent in London on Tuesday.",
    "I could not stop laughing; the plot twists were wonderful and surprising.",
    "Reuters reported that the minister resigned after the vote.",
] * 30


@pytest.fixture(scope="module")
def trained():
    return {algorithm: subword.train_tokenizer(algorithm, TEXTS, 400) for algorithm in subword.ALGORITHMS}


def test_each_algorithm_marks_boundaries_its_own_way(trained):
    assert subword.boundary_marker(trained["wordpiece"]) == "##"
    assert subword.boundary_marker(trained["bpe"]) == "Ġ"
    assert subword.boundary_marker(trained["unigram"]) == "▁"
    for tokenizer in trained.values():
        assert len(tokenizer) <= 400
        assert tokenizer.mask_token == "[MASK]" and tokenizer.pad_token_id is not None


def test_trained_tokenizers_round_trip(trained):
    text = "The acting was surprising."
    for algorithm, tokenizer in trained.items():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids).replace(" .", ".").strip() == text, algorithm


def test_byte_level_bpe_never_needs_an_unknown_token(trained):
    odd = ["naïve café 😀 Ωmega"]
    assert subword.unknown_share(trained["bpe"], odd) == 0
    assert subword.unknown_share(trained["wordpiece"], odd) > 0


def test_tokens_per_word_counts_pieces_per_whitespace_word(tokenizer):
    assert subword.tokens_per_word(tokenizer, ["the cat sat"]) == 1.0
    assert subword.tokens_per_word(tokenizer, ["the tokenization"]) == 1.5  # token ##ization
    with pytest.raises(ValueError):
        subword.tokens_per_word(tokenizer, ["   "])
    with pytest.raises(TypeError, match="texts"):
        subword.tokens_per_word(tokenizer, "not a list")


def test_gpt2_tokenizer_reproduces_gpt2_ids():
    gpt2 = assets.load_byte_level_bpe()
    assert len(gpt2) == 50257
    assert gpt2("Hello world")["input_ids"] == [15496, 995]
    assert subword.boundary_marker(gpt2) == "Ġ"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="algorithm"):
        subword.train_tokenizer("sentencepiece", TEXTS, 400)
    with pytest.raises(ValueError, match="vocab_size"):
        subword.train_tokenizer("bpe", TEXTS, 10)
    with pytest.raises(ValueError):
        subword.train_tokenizer("bpe", [], 400)
