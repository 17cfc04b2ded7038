"""Named-entity recognition on WordPiece tokens: word labels aligned to tokens (-100 where no
label belongs), token predictions turned back into word tags, BIO tags into entity spans."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import torch

from bert_workbook.arguments import check_count, check_model, check_texts, check_tokenizer
from bert_workbook.masking import IGNORE_INDEX  # the course's one definition: the label losses skip

WORD_STRATEGIES = ("first", "average", "max")


def b_to_i_ids(label_names: Sequence[str]) -> dict[int, int]:
    """``{id of B-X: id of I-X}`` for every entity type X in a BIO label list."""
    index = {name: i for i, name in enumerate(label_names)}
    pairs = {}
    for name, i in index.items():
        if name.startswith("B-"):
            inside = "I-" + name[2:]
            if inside not in index:
                raise ValueError(f"label list has {name!r} but no {inside!r}")
            pairs[i] = index[inside]
    return pairs


def sequence_word_ids(encoding, sequence: int = 0) -> list[int | None]:
    """``encoding.word_ids()`` with ``None`` on every token outside ``sequence`` (0: the first
    text, 1: the second of a pair): in a pair both texts number their words from 0, so the
    other text's tokens must not pick up this text's labels."""
    if sequence not in (0, 1):
        raise ValueError(f"sequence must be 0 or 1, got {sequence!r}")
    return [w if s == sequence else None for w, s in zip(encoding.word_ids(), encoding.sequence_ids())]


def align_labels_to_tokens(word_labels: Sequence[int], word_ids: Sequence[int | None], *,
                           label_all_subwords: bool = False,
                           b_to_i: Mapping[int, int] | None = None) -> list[int]:
    """One label per token: ``-100`` on special tokens (word id ``None``); the word's label on
    its first subword; on the word's other subwords ``-100``, or with ``label_all_subwords``
    the word's label again, a B- label turned into its I- label (``b_to_i``), since only the
    first piece begins the entity. Word ids may stop early (truncation), never run past the labels;
    a word that became no token at all (e.g. a zero-width space) loses its label, with a warning."""
    if callable(word_ids):
        raise TypeError("word_ids is a method here: call it, encoding.word_ids()")
    if isinstance(word_labels, str) or any(isinstance(label, str) for label in word_labels):
        raise TypeError("word_labels must be tag ids (ints), not tag names: map them first, e.g. "
                        "[CONLL_TAGS.index(tag) for tag in tags]")
    if any(label is None for label in word_labels):
        raise TypeError("word_labels must be tag ids (ints), one per word, but hold None: are word_labels and "
                        "word_ids swapped? The order is (word_labels, word_ids)")
    if label_all_subwords and b_to_i is None:
        raise ValueError("label_all_subwords=True needs b_to_i, the {B-X id: I-X id} map (see b_to_i_ids)")
    used = [w for w in word_ids if w is not None]
    if used and (min(used) < 0 or max(used) >= len(word_labels)):
        raise ValueError(f"word_ids refer to word {max(used)} but there are {len(word_labels)} word labels: "
                         "the labels do not belong to these words (or to this text of a pair)")
    missing = sorted(set(range(max(used) + 1)) - set(used)) if used else []
    if missing:  # after the last word seen, words are cut off by truncation: expected
        warnings.warn(f"words {missing[:5]} became no tokens (the tokenizer drops some characters, such as "
                      f"zero-width spaces and control characters), so their labels "
                      f"{[int(word_labels[w]) for w in missing[:5]]} are not trained on; clean such "
                      "words out of the text, or replace them with [UNK]", stacklevel=2)
    aligned, previous = [], None
    for word in word_ids:
        if word is None:
            aligned.append(IGNORE_INDEX)
        elif word != previous:
            aligned.append(int(word_labels[word]))
        elif label_all_subwords:
            label = int(word_labels[word])
            aligned.append(b_to_i.get(label, label))
        else:
            aligned.append(IGNORE_INDEX)
        previous = word
    return aligned


def word_predictions(token_logits: torch.Tensor, word_ids: Sequence[int | None], num_words: int,
                     strategy: str = "first") -> list[int]:
    """Word-level label ids from token-level logits ``(tokens, labels)``: from each word's first
    subword (``"first"``), from its subwords' mean logits (``"average"``), or from the single
    most confident subword (``"max"``). Words cut off by truncation get the label id 0 ("O")."""
    if strategy not in WORD_STRATEGIES:
        raise ValueError(f"strategy must be one of {WORD_STRATEGIES}, got {strategy!r}")
    check_count(num_words, "num_words", minimum=0)
    if not isinstance(token_logits, torch.Tensor):
        raise TypeError(f"token_logits must be a tensor (tokens, labels), got {type(token_logits).__name__}")
    if token_logits.ndim != 2 or len(token_logits) != len(word_ids):
        raise ValueError(f"expected logits (tokens, labels) for {len(word_ids)} tokens, "
                         f"got {tuple(token_logits.shape)}")
    pieces: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            pieces.setdefault(word, []).append(position)
    if pieces and max(pieces) >= num_words:
        raise ValueError(f"word_ids refer to word {max(pieces)} but num_words is {num_words}")
    predicted = [0] * num_words
    for word, positions in pieces.items():
        rows = token_logits[positions].float()
        if strategy == "first":
            predicted[word] = int(rows[0].argmax())
        elif strategy == "average":
            predicted[word] = int(rows.mean(0).argmax())
        else:
            confidence, labels = rows.softmax(-1).max(-1)
            predicted[word] = int(labels[confidence.argmax()])
    return predicted


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, first word, last word + 1)`` for every entity in a BIO tag sequence, as seqeval
    (the scorer the course uses) reads it: an I-X that does not continue an X entity starts a
    new one."""
    from seqeval.metrics.sequence_labeling import get_entities

    if isinstance(tags, str) or any(not isinstance(tag, str) for tag in tags):
        raise TypeError("tags must be a list of tag names such as 'B-PER', not tag ids: map ids to names "
                        "first, e.g. [CONLL_TAGS[i] for i in ids]")
    for i, tag in enumerate(tags):
        if tag != "O" and tag[:2] not in ("B-", "I-"):
            raise ValueError(f"tag {i} is {tag!r}: expected 'O', 'B-<type>' or 'I-<type>'")
    return [(kind, start, end + 1) for kind, start, end in get_entities(list(tags))]  # seqeval's end is inclusive


def character_spans(words: Sequence[str], spans: Sequence[tuple[str, int, int]],
                    separator: str = " ") -> tuple[str, list[tuple[str, int, int]]]:
    """The text of ``words`` joined by ``separator``, and each word span as a character span
    ``(type, start, end)`` into that text."""
    if isinstance(words, str):
        raise TypeError("words must be a list of words, not one string: split it first, text.split()")
    for span in spans:
        if not 0 <= span[1] < span[2] <= len(words):
            raise ValueError(f"spans must lie within the {len(words)} words, as (type, first word, last word + 1); "
                             f"got {tuple(span)}")
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + len(separator)
    text = separator.join(words)
    return text, [(kind, starts[first], starts[last - 1] + len(words[last - 1])) for kind, first, last in spans]


def _word_lists(sentences) -> list[list[str]]:
    """``sentences`` (pre-split) as lists of words, or a TypeError: a string in place of a list
    of words would be read as a list of characters, one tag per character."""
    wanted, hint = "sentences must be lists of words (e.g. [['Paris', 'is', 'big']]), not", "split each text first"
    if isinstance(sentences, str) or not isinstance(sentences, Iterable):
        raise TypeError(f"{wanted} {sentences!r:.60}: {hint}, e.g. [text.split() for text in texts]")
    lists = []
    for i, words in enumerate(sentences):
        as_list = list(words) if isinstance(words, Iterable) and not isinstance(words, str) else None
        if as_list is None or not all(isinstance(word, str) for word in as_list):
            raise TypeError(f"{wanted} sentence {i} = {words!r:.60}: {hint}, e.g. text.split()")
        lists.append(as_list)
    return lists


def _shortest_first(items: Sequence) -> list[int]:
    """The indices of ``items`` ordered by length, ties in the given order: batches of neighbours
    in this order pad little."""
    return sorted(range(len(items)), key=lambda i: len(items[i]))


@torch.no_grad()
def predict_word_tags(model, tokenizer, sentences: Sequence[Sequence[str]], strategy: str | Sequence[str] = "first",
                      batch_size: int = 64, max_length: int = 128):
    """Word-level BIO tags for pre-split ``sentences`` from a token classifier: tokens per
    ``word_predictions(strategy)``, names from ``model.config.id2label``. Several strategies
    (a list) share one forward pass and give ``{strategy: tags}``."""
    check_model(model)
    check_tokenizer(tokenizer)
    sentences = _word_lists(sentences)
    check_count(batch_size, "batch_size")
    strategies = [strategy] if isinstance(strategy, str) else list(strategy)
    for name in strategies:
        if name not in WORD_STRATEGIES:
            raise ValueError(f"strategy must be one of {WORD_STRATEGIES}, got {name!r}")
    id2label = model.config.id2label
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # batches of sentences of similar length: little padding, and the order is restored below
    order = _shortest_first(sentences)
    tags: dict[str, list] = {name: [None] * len(sentences) for name in strategies}
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        chunk = [sentences[i] for i in rows]
        batch = tokenizer(chunk, is_split_into_words=True, truncation=True, max_length=max_length,
                          padding=True, return_tensors="pt")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
        for row, (i, words) in enumerate(zip(rows, chunk)):
            for name in strategies:
                predicted = word_predictions(logits[row], batch.word_ids(row), len(words), name)
                tags[name][i] = [id2label[label] for label in predicted]
    model.train(was_training)
    return tags[strategy] if isinstance(strategy, str) else tags


def _span_counts(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]):
    """Per sentence: (correct entities, predicted entities, gold entities), from BIO tags."""
    counts = []
    for gold_tags, predicted_tags in zip(gold, predicted):
        gold_spans, predicted_spans = set(entity_spans(gold_tags)), set(entity_spans(predicted_tags))
        counts.append((len(gold_spans & predicted_spans), len(predicted_spans), len(gold_spans)))
    import numpy as np

    return np.array(counts, dtype=np.float64).reshape(-1, 3)


def paired_f1_difference(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]],
                         baseline: Sequence[Sequence[str]], *, resamples: int = 2000, seed: int = 0,
                         level: float = 0.95):
    """Entity micro-F1 of ``predicted`` minus that of ``baseline`` on the same sentences, with a
    paired bootstrap interval over sentences (both scored on each resample of the sentences): how
    much of a difference the choice of evaluation sentences alone could make. Returns a
    ``stats.Comparison`` whose one source is the evaluation sentences (``runs`` = sentences): a
    claim about a labelling scheme also needs its training seeds."""
    import numpy as np

    from bert_workbook import stats

    if not (len(gold) == len(predicted) == len(baseline)) or len(gold) == 0:
        raise ValueError(f"need the same non-zero number of sentences; got {len(gold)} gold, "
                         f"{len(predicted)} predicted and {len(baseline)} baseline")
    a, b = _span_counts(gold, predicted), _span_counts(gold, baseline)

    def f1(counts):  # counts: (..., 3) sums of correct, predicted, gold
        return np.where(counts[..., 1] + counts[..., 2] > 0,
                        2 * counts[..., 0] / np.maximum(counts[..., 1] + counts[..., 2], 1), 0.0)

    low, high = stats.bootstrap_interval(lambda w: f1(w @ a) - f1(w @ b), len(gold), level=level,
                                         resamples=resamples, seed=seed)
    return stats.Comparison(float(f1(a.sum(0)) - f1(b.sum(0))), low, high, len(gold),
                            ("evaluation sentences",), "paired bootstrap over sentences", level)


def span_scores(gold: Sequence[Sequence[tuple]], predicted: Sequence[Sequence[tuple]]) -> dict:
    """Exact-match precision, recall and F1 over entity spans (``(type, start, end)`` tuples,
    one list per sentence): a predicted entity counts only if type and both ends are right."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for name, sentences in (("gold", gold), ("predicted", predicted)):
        for spans in sentences:
            if isinstance(spans, str) or any(not isinstance(span, tuple) or len(span) != 3 for span in spans):
                raise TypeError(f"{name} must hold one list of (type, start, end) tuples per sentence, got "
                                f"{spans!r:.60} (BIO tags become such spans with entity_spans(tags))")
    true_positives = sum(len(set(g) & set(p)) for g, p in zip(gold, predicted))
    n_gold, n_predicted = sum(len(set(g)) for g in gold), sum(len(set(p)) for p in predicted)
    precision = true_positives / n_predicted if n_predicted else 0.0
    recall = true_positives / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "gold": n_gold, "predicted": n_predicted}


def pipeline_spans(tagger, texts: Sequence[str], batch_size: int = 64) -> list[list[tuple[str, int, int]]]:
    """Entities found by a token-classification ``pipeline`` with an ``aggregation_strategy``, as
    ``(type, start, end)`` character spans, one list per text in the order given. The texts go
    through the pipeline shortest first, so each batch pads little (on a CPU about twice as fast
    as in the given order)."""
    if not callable(tagger):
        raise TypeError(f"tagger must be a token-classification pipeline, got {type(tagger).__name__}: "
                        "the order is (tagger, texts)")
    check_texts(texts)
    texts = list(texts)
    order = _shortest_first(texts)
    found: list[list[tuple[str, int, int]]] = [[] for _ in texts]
    if not texts:
        return found
    for i, entities in zip(order, tagger([texts[i] for i in order], batch_size=batch_size)):
        found[i] = [(entity["entity_group"], entity["start"], entity["end"]) for entity in entities]
    return found
