"""Label alignment, word-level decoding and BIO spans (notebook 07)."""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_workbook import assets, ner
from bert_workbook.data import CONLL_TAGS
from bert_workbook.exercises import ex07

TAG = {name: i for i, name in enumerate(CONLL_TAGS)}
B_TO_I = ner.b_to_i_ids(CONLL_TAGS)


@pytest.fixture(scope="module")
def tokenizer():
    return assets.load_tokenizer("embedded")


def test_b_to_i_ids_on_conll_tags():
    assert B_TO_I == {TAG["B-PER"]: TAG["I-PER"], TAG["B-ORG"]: TAG["I-ORG"],
                      TAG["B-LOC"]: TAG["I-LOC"], TAG["B-MISC"]: TAG["I-MISC"]}
    with pytest.raises(ValueError, match="no 'I-X'"):
        ner.b_to_i_ids(["O", "B-X"])


def test_alignment_of_the_lecture_example(tokenizer):
    words = ["Mt.", "Sanitas", "is", "in", "Sunshine", "Canyon"]
    tags = ["B-LOC", "I-LOC", "O", "O", "B-LOC", "I-LOC"]
    encoding = tokenizer(words, is_split_into_words=True)
    tokens = encoding.tokens()
    first = ner.align_labels_to_tokens([TAG[t] for t in tags], encoding.word_ids())
    every = ner.align_labels_to_tokens([TAG[t] for t in tags], encoding.word_ids(),
                                       label_all_subwords=True, b_to_i=B_TO_I)
    assert tokens[0] == "[CLS]" and first[0] == every[0] == -100 and first[-1] == every[-1] == -100
    assert [t for t, label in zip(tokens, first) if label != -100][:2] == ["mt", "san"]
    # "Mt." is "mt" + ".": the "." is a continuation, so B-LOC becomes I-LOC when every piece is labelled
    assert tokens[1:3] == ["mt", "."]
    assert first[1:3] == [TAG["B-LOC"], -100] and every[1:3] == [TAG["B-LOC"], TAG["I-LOC"]]
    assert sum(label != -100 for label in first) == len(words)


def test_repeated_words_and_truncation(tokenizer):
    words = ["Paris", "Hilton", "visited", "Paris", "and", "Paris", "again", "yesterday"]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "O", "O"]
    encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length=6)
    labels = ner.align_labels_to_tokens([TAG[t] for t in tags], encoding.word_ids())
    assert len(labels) == len(encoding["input_ids"]) == 6
    kept = [label for label in labels if label != -100]
    assert kept == [TAG[t] for t in tags][:len(kept)]


def test_pairs_label_only_their_own_text(tokenizer):
    encoding = tokenizer("where is it ?", "Sunshine Canyon")
    word_ids = ner.sequence_word_ids(encoding, sequence=1)
    labels = ner.align_labels_to_tokens([TAG["B-LOC"], TAG["I-LOC"]], word_ids)
    for label, sequence in zip(labels, encoding.sequence_ids()):
        if sequence != 1:
            assert label == -100
    assert [label for label in labels if label != -100] == [TAG["B-LOC"], TAG["I-LOC"]]


def test_bad_inputs_raise_clear_errors(tokenizer):
    encoding = tokenizer(["Sunshine", "Canyon"], is_split_into_words=True)
    with pytest.raises(TypeError, match=r"call it, encoding.word_ids\(\)"):
        ner.align_labels_to_tokens([0, 0], encoding.word_ids)
    with pytest.raises(TypeError, match="tag ids"):
        ner.align_labels_to_tokens(["B-LOC", "I-LOC"], encoding.word_ids())
    with pytest.raises(TypeError, match="tag names"):
        ner.entity_spans([5, 6, 0])
    with pytest.raises(ValueError, match="refer to word 2"):
        ner.align_labels_to_tokens([0, 0], [None, 0, 1, 2, None])
    with pytest.raises(ValueError, match="needs b_to_i"):
        ner.align_labels_to_tokens([0], [None, 0, None], label_all_subwords=True)
    with pytest.raises(ValueError, match="strategy"):
        ner.word_predictions(torch.zeros(3, 2), [None, 0, None], 1, strategy="last")
    with pytest.raises(ValueError, match="for 2 tokens"):
        ner.word_predictions(torch.zeros(3, 2), [None, 0], 1)
    with pytest.raises(ValueError, match="expected 'O'"):
        ner.entity_spans(["O", "PER"])


word_lists = st.lists(st.sampled_from(["the", "Sanitas", "unbelievably", "Mt.", "U.S.", "x", "!", "naïve",
                                        "Zürich", "2024-11-23", "co-operate"]), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(words=word_lists, data=st.data())
def test_first_subword_mode_labels_every_word_exactly_once(tokenizer, words, data):
    tags = data.draw(st.lists(st.sampled_from(range(len(CONLL_TAGS))), min_size=len(words), max_size=len(words)))
    encoding = tokenizer(words, is_split_into_words=True)
    labels = ner.align_labels_to_tokens(tags, encoding.word_ids())
    labelled_words = [w for w, label in zip(encoding.word_ids(), labels) if label != -100]
    assert labelled_words == list(range(len(words)))
    assert [label for label in labels if label != -100] == tags
    every = ner.align_labels_to_tokens(tags, encoding.word_ids(), label_all_subwords=True, b_to_i=B_TO_I)
    assert all((label == -100) == (w is None) for w, label in zip(encoding.word_ids(), every))
    for w, label in zip(encoding.word_ids(), every):
        if w is not None:
            assert label in (tags[w], B_TO_I.get(tags[w]))


def test_word_predictions_strategies():
    # word 0: one piece; word 1: three pieces that disagree
    logits = torch.tensor([[0.0, 0, 0], [5, 0, 0], [0, 3, 0], [0, 0, 1.0], [0, 0, 2.5], [0, 0, 0]])
    word_ids = [None, 0, 1, 1, 1, None]
    assert ner.word_predictions(logits, word_ids, 2, "first") == [0, 1]
    assert ner.word_predictions(logits, word_ids, 2, "average") == [0, 2]
    assert ner.word_predictions(logits, word_ids, 2, "max") == [0, 1]
    assert ner.word_predictions(logits, word_ids, 3, "first") == [0, 1, 0]  # a truncated word: "O"


def test_entity_spans_and_character_spans():
    tags = ["B-LOC", "I-LOC", "O", "O", "B-LOC", "I-LOC", "I-PER", "B-PER", "B-PER"]
    spans = ner.entity_spans(tags)
    assert spans == [("LOC", 0, 2), ("LOC", 4, 6), ("PER", 6, 7), ("PER", 7, 8), ("PER", 8, 9)]
    words = ["Mt.", "Sanitas", "is", "in", "Sunshine", "Canyon"]
    text, chars = ner.character_spans(words, ner.entity_spans(tags[:6]))
    assert [text[start:end] for _, start, end in chars] == ["Mt. Sanitas", "Sunshine Canyon"]
    assert ner.entity_spans([]) == [] and ner.entity_spans(["O", "O"]) == []


# --- the alignment exercise check ------------------------------------------------------------

def by_position(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return [word_labels[i] if i < len(word_labels) else -100 for i in range(len(word_ids))]


def no_b_to_i(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return ner.align_labels_to_tokens(word_labels, word_ids, label_all_subwords=label_all_subwords, b_to_i={})


def specials_as_o(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    aligned = ner.align_labels_to_tokens(word_labels, word_ids, label_all_subwords=label_all_subwords, b_to_i=b_to_i)
    return [0 if w is None else label for w, label in zip(word_ids, aligned)]


def always_every(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    return ner.align_labels_to_tokens(word_labels, word_ids, label_all_subwords=True, b_to_i=b_to_i)


def first_seen(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    """Labels a word the first time its id appears anywhere: breaks on the second text of a pair."""
    seen, out = set(), []
    for w in word_ids:
        out.append(-100 if w is None or w in seen else word_labels[w])
        if w is not None:
            seen.add(w)
    return out if not label_all_subwords else ner.align_labels_to_tokens(
        word_labels, word_ids, label_all_subwords=True, b_to_i=b_to_i)


def test_alignment_check_passes_on_the_reference():
    result = ex07.check_align_labels(ner.align_labels_to_tokens)
    assert result.passed, result


@pytest.mark.parametrize("wrong, says", [
    (lambda *a, **k: (_ for _ in ()).throw(NotImplementedError), "not implemented"),
    (by_position, "by position"),
    (no_b_to_i, "B- to I- rule"),
    (specials_as_o, "special tokens"),
    (always_every, "continuation pieces"),
    (lambda labels, word_ids, **k: "B-LOC", "list of ints"),
])
def test_alignment_check_names_the_mistake(wrong, says):
    result = ex07.check_align_labels(wrong)
    assert not result.passed
    assert says in str(result), str(result)


def test_span_scores_exact_match():
    gold = [[("LOC", 0, 2), ("LOC", 4, 6)], [("PER", 0, 1)]]
    predicted = [[("LOC", 0, 2), ("LOC", 4, 5)], [("PER", 0, 1), ("ORG", 2, 3)]]
    scores = ner.span_scores(gold, predicted)
    assert (scores["gold"], scores["predicted"]) == (3, 4)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert ner.span_scores([[]], [[]])["f1"] == 0.0
    with pytest.raises(ValueError, match="1 gold sentences but 2"):
        ner.span_scores([[]], [[], []])


def test_predict_word_tags_gives_one_tag_per_word(tokenizer):
    torch.manual_seed(0)
    model = assets.load_token_classifier(CONLL_TAGS)
    sentences = [["Mt.", "Sanitas", "is", "in", "Sunshine", "Canyon"], ["Hi"]]
    tags = ner.predict_word_tags(model, tokenizer, sentences, strategy="average")
    assert [len(t) for t in tags] == [6, 1] and all(t in CONLL_TAGS for row in tags for t in row)
    assert not model.training


def test_entities_html_marks_the_spans():
    from bert_workbook.widgets import entities_html

    out = entities_html("Mt. Sanitas is in <Sunshine> Canyon", [("LOC", 18, 35), ("LOC", 0, 11)])
    assert out.index("Mt. Sanitas") < out.index("&lt;Sunshine&gt; Canyon") and out.count("<mark") == 2
    with pytest.raises(ValueError, match="overlaps"):
        entities_html("abc", [("LOC", 0, 2), ("PER", 1, 3)])


def test_a_word_that_becomes_no_token_is_reported_not_dropped_silently(tokenizer):
    words, labels = ["Paris", "\u200b", "Hilton"], [5, 1, 2]
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    assert 1 not in word_ids  # the zero-width space is no token
    with pytest.warns(UserWarning, match=r"words \[1\] became no tokens"):
        ner.align_labels_to_tokens(labels, word_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # truncation (words cut off at the end) is not reported
        ner.align_labels_to_tokens(labels, word_ids[:2] + [None])


def test_several_strategies_share_one_forward_pass(tokenizer):
    torch.manual_seed(0)
    model = assets.load_token_classifier(CONLL_TAGS)
    sentences = [["Mt.", "Sanitas", "is", "in", "Sunshine", "Canyon"], ["Unbelievablyton", "Heights"]]
    together = ner.predict_word_tags(model, tokenizer, sentences, strategy=["first", "average", "max"])
    for strategy in ("first", "average", "max"):
        assert together[strategy] == ner.predict_word_tags(model, tokenizer, sentences, strategy=strategy)
    with pytest.raises(ValueError, match="strategy"):
        ner.predict_word_tags(model, tokenizer, sentences, strategy=["first", "median"])


def test_paired_f1_difference_matches_seqeval_and_brackets_it():
    from seqeval.metrics import f1_score

    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG"], ["B-MISC", "O"]] * 10
    good = [["B-PER", "I-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG"], ["O", "O"]] * 10
    bad = [["B-PER", "O", "O"], ["B-LOC", "O"], ["O", "O"], ["O", "O"]] * 10
    interval = ner.paired_f1_difference(gold, good, bad)
    assert interval.mean == pytest.approx(f1_score(gold, good) - f1_score(gold, bad))
    assert interval.low <= interval.mean <= interval.high and interval.runs == 40
    assert interval.sources == ("evaluation sentences",)
    assert interval.verdict(about=("seed", "evaluation sentences")).startswith("not a verdict")
    same = ner.paired_f1_difference(gold, good, good)
    assert same.mean == same.low == same.high == 0
    with pytest.raises(ValueError, match="same non-zero number"):
        ner.paired_f1_difference(gold, good[:3], bad)


def test_pipeline_spans_keep_the_order_of_the_texts(tokenizer):
    from transformers import pipeline

    torch.manual_seed(0)
    model = assets.load_token_classifier(CONLL_TAGS).eval()
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer,
                      aggregation_strategy="first", device="cpu")
    texts = ["Mt. Sanitas is in Sunshine Canyon near Boulder , Colorado .", "Hi", "Paris Hilton left Paris ."]
    one_by_one = [[(e["entity_group"], e["start"], e["end"]) for e in tagger(text)] for text in texts]
    assert ner.pipeline_spans(tagger, texts, batch_size=2) == one_by_one
    assert ner.pipeline_spans(tagger, []) == []
    with pytest.raises(TypeError, match="sequence of strings"):
        ner.pipeline_spans(tagger, "Hi")
