"""Three subword algorithms side by side: WordPiece (BERT), byte-level BPE (GPT-2, RoBERTa) and
Unigram (SentencePiece: ALBERT, XLNet, DeBERTa-v3), trained here on the same text or loaded.

The trained ones use the ``tokenizers`` library with each model family's usual pre-tokenizer, so
the only difference between them is the algorithm and how it marks word boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence

from bert_workbook.arguments import check_texts, check_tokenizer

ALGORITHMS = ("wordpiece", "bpe", "unigram")

_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(algorithm: str, texts: Sequence[str], vocab_size: int):
    """A fast tokenizer trained on ``texts`` with ``vocab_size`` entries (specials included):

    * ``"wordpiece"``: split on spaces and punctuation, then WordPiece; ``##`` marks a piece
      that continues a word (BERT);
    * ``"bpe"``: byte-level BPE on GPT-2's pre-tokenizer; ``Ġ`` marks a token that follows a
      space, and any byte sequence can be written, so nothing is ever unknown (GPT-2, RoBERTa);
    * ``"unigram"``: spaces become ``▁`` and belong to the next word's first piece; the Unigram
      language model picks the pieces (SentencePiece: ALBERT, T5, DeBERTa-v3).

    All three keep case and use the same special tokens ([CLS], [SEP], [MASK], [PAD], [UNK]).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    _check_texts(texts)
    if not isinstance(vocab_size, int) or vocab_size < 300:
        raise ValueError(f"vocab_size must be an int of at least 300, got {vocab_size!r}")
    if algorithm == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=_SPECIALS,
                                            show_progress=False)
    elif algorithm == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_SPECIALS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
    else:
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=_SPECIALS,
                                          unk_token="[UNK]", show_progress=False)
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _check_texts(texts: Sequence[str]) -> None:
    check_texts(texts)
    if len(texts) == 0:
        raise ValueError("texts must be a non-empty sequence of strings")


def _pieces(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    check_tokenizer(tokenizer)
    _check_texts(texts)
    return tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]


def tokens_per_word(tokenizer, texts: Sequence[str]) -> float:
    """Tokens per whitespace-separated word over ``texts`` (no special tokens): 1.0 means every
    word is one token; more means longer sequences for the same text."""
    pieces = _pieces(tokenizer, texts)
    words = sum(len(text.split()) for text in texts)
    if words == 0:
        raise ValueError("texts hold no words")
    return sum(len(row) for row in pieces) / words


def unknown_share(tokenizer, texts: Sequence[str]) -> float:
    """The share of tokens that are the unknown token (0 for a tokenizer without one)."""
    rows = _pieces(tokenizer, texts)
    total = sum(len(row) for row in rows)
    if tokenizer.unk_token_id is None or total == 0:
        return 0.0
    return sum(row.count(tokenizer.unk_token_id) for row in rows) / total


BOUNDARY_MARKERS = {"##": "## starts a piece that continues a word",
                    "Ġ": "Ġ starts a token that follows a space",
                    "▁": "▁ starts a token that begins a word"}


def boundary_marker(tokenizer) -> str:
    """The symbol the tokenizer's vocabulary uses to mark word boundaries (a key of
    ``BOUNDARY_MARKERS``), found by counting which one most vocabulary entries start with."""
    check_tokenizer(tokenizer)
    counts = dict.fromkeys(BOUNDARY_MARKERS, 0)
    for token in tokenizer.get_vocab():
        for marker in counts:
            if token.startswith(marker) and len(token) > len(marker):
                counts[marker] += 1
    marker = max(counts, key=counts.get)
    if counts[marker] == 0:
        raise ValueError("no vocabulary entry starts with ##, Ġ or ▁: unknown boundary marking")
    return marker
