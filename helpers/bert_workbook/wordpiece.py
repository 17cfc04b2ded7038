"""WordPiece: how BERT's tokenizer splits words into pieces, and tables of what it produces."""

from __future__ import annotations

from collections.abc import Container, Iterable

from bert_workbook.arguments import check_count, check_texts, check_tokenizer

CONTINUATION_PREFIX = "##"


def _check_vocab(vocab, kind: type) -> None:
    """A TypeError unless ``vocab`` is a ``kind`` of entries: not one string (whose ``in`` finds
    substrings), not the tokenizer itself."""
    if isinstance(vocab, str) or not isinstance(vocab, kind):
        got = "one string" if isinstance(vocab, str) else type(vocab).__name__
        raise TypeError(f"vocab must be a collection of vocabulary entries (e.g. tokenizer.get_vocab()), got {got}")


def wordpiece_tokenize_word(
    word: str,
    vocab: Container[str],
    unk_token: str = "[UNK]",
    max_chars: int = 100,
) -> list[str]:
    """Split one normalized word into WordPiece tokens, greedily taking the longest match first.

    Pieces after the first carry the ``##`` prefix. If some part of the word matches no vocabulary
    entry, the whole word becomes ``[unk_token]``, as in BERT; so do words over ``max_chars``.
    """
    if not isinstance(word, str):
        raise TypeError(f"word must be a str, got {type(word).__name__}")
    _check_vocab(vocab, Container)
    check_count(max_chars, "max_chars")
    if not word:
        return []
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else CONTINUATION_PREFIX + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:  # no prefix of the rest is in the vocabulary
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def character_split(word: str) -> tuple[str, ...]:
    """Where WordPiece training starts: a word as single characters, ``##`` on all but the first."""
    if not isinstance(word, str) or not word:
        raise ValueError(f"word must be a non-empty str, got {word!r}")
    return (word[0], *(CONTINUATION_PREFIX + c for c in word[1:]))


def merge_scores(split_counts: dict[tuple[str, ...], int]) -> list[dict]:
    """The candidate merges of one WordPiece training step, best first.

    ``split_counts`` maps each training word, split into its current pieces, to how often it
    occurs. Every pair of adjacent pieces is a candidate, scored as WordPiece training scores it:
    ``count(pair) / (count(first) * count(second))``, high when the two pieces occur together
    much more often than their own frequencies would predict. BPE would take the most frequent
    pair instead (the ``count`` column). Ties keep the order of first appearance."""
    if not split_counts:
        raise ValueError("split_counts is empty: no words to score")
    piece_count: dict[str, int] = {}
    pair_count: dict[tuple[str, str], int] = {}
    for pieces, count in split_counts.items():
        if isinstance(pieces, str) or not pieces or isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"expected (piece, ...) -> positive count, got {pieces!r} -> {count!r}")
        for piece in pieces:
            piece_count[piece] = piece_count.get(piece, 0) + count
        for pair in zip(pieces, pieces[1:]):
            pair_count[pair] = pair_count.get(pair, 0) + count
    rows = [{"pair": f"{a} + {b}", "merged": a + b.removeprefix(CONTINUATION_PREFIX), "count": n,
             "score": n / (piece_count[a] * piece_count[b])} for (a, b), n in pair_count.items()]
    return sorted(rows, key=lambda row: -row["score"])


def split_into_words(tokenizer, text: str) -> list[str]:
    """The words BERT's tokenizer sees: after its normalizer (e.g. lowercasing) and pre-tokenizer."""
    check_tokenizer(tokenizer)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    backend = tokenizer.backend_tokenizer
    normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
    return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]


def distinct_words(tokenizer, texts: Iterable[str], exclude: Container[str] = ()) -> list[str]:
    """The distinct words of ``texts`` in order of first appearance, minus ``exclude``."""
    check_tokenizer(tokenizer)
    check_texts(texts)
    seen: dict[str, None] = {}
    for text in texts:
        for word in split_into_words(tokenizer, text):
            if word not in exclude:
                seen.setdefault(word, None)
    return list(seen)


def unk_rate(tokenizer, texts: Iterable[str]) -> tuple[float, int]:
    """Share of tokens that are ``[UNK]`` over ``texts`` (no special tokens), and the token count."""
    check_tokenizer(tokenizer)
    check_texts(texts)
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: cannot compute an [UNK] rate")
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    total = sum(len(row) for row in ids)
    unknown = sum(row.count(tokenizer.unk_token_id) for row in ids)
    return (unknown / total if total else 0.0), total


def token_rows(tokenizer, text: str, text_pair: str | None = None, **kwargs) -> list[dict]:
    """One row per token: position, token, id, segment, attention mask, word id, character span.

    The character span (``start``, ``end``) is into the text the token came from (the first or
    the second sentence); special tokens have an empty span ``(0, 0)`` and word id ``None``.
    """
    check_tokenizer(tokenizer)
    if not isinstance(text, str) or (text_pair is not None and not isinstance(text_pair, str)):
        raise TypeError("text and text_pair must be strings")
    encoding = tokenizer(
        text, text_pair, return_offsets_mapping=True, return_token_type_ids=True, **kwargs
    )
    ids = encoding["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    word_ids = encoding.word_ids()
    sequence_ids = encoding.sequence_ids()
    rows = []
    for i, (token, token_id) in enumerate(zip(tokens, ids)):
        start, end = encoding["offset_mapping"][i]
        source = text if sequence_ids[i] != 1 else text_pair
        rows.append(
            {
                "position": i,
                "token": token,
                "id": token_id,
                "segment": encoding["token_type_ids"][i],
                "attention": encoding["attention_mask"][i],
                "word_id": word_ids[i],
                "start": start,
                "end": end,
                "text": source[start:end] if sequence_ids[i] is not None else "",
            }
        )
    return rows


def format_token_rows(rows: list[dict], columns: Iterable[str] | None = None) -> str:
    """Lay token rows out as a plain-text table (for printing, and for no-widget fallbacks)."""
    if not rows:
        return "(no tokens)"
    columns = list(columns or rows[0])
    cells = [[("-" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[j]) for r in cells)) for j, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def vocabulary_breakdown(vocab: Iterable[str]) -> dict[str, int]:
    """Count the kinds of entries in a WordPiece vocabulary."""
    _check_vocab(vocab, Iterable)
    counts = {"special [..]": 0, "unused slots": 0, "word starts": 0, "continuations (##)": 0}
    for token in vocab:
        if token.startswith("[unused"):
            counts["unused slots"] += 1
        elif token.startswith("[") and token.endswith("]"):
            counts["special [..]"] += 1
        elif token.startswith(CONTINUATION_PREFIX) and len(token) > len(CONTINUATION_PREFIX):
            counts["continuations (##)"] += 1
        else:
            counts["word starts"] += 1
    return counts


def first_subword_mask(word_ids: list[int | None]) -> list[bool]:
    """True at the first token of each word, False on continuations and special tokens (None).

    ``word_ids`` is what ``encoding.word_ids()`` returns. In a sentence pair the word ids restart
    at 0 in the second sentence; the [SEP] between them (None) keeps the two apart.
    """
    if not isinstance(word_ids, (list, tuple)):
        raise TypeError(f"word_ids must be a list, got {type(word_ids).__name__}")
    mask, previous = [], None
    for word_id in word_ids:
        if word_id is not None and (not isinstance(word_id, int) or word_id < 0):
            raise ValueError(f"word ids must be None or non-negative ints, got {word_id!r}")
        mask.append(word_id is not None and word_id != previous)
        previous = word_id
    return mask
