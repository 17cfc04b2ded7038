import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_workbook import data


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="imdb"):
        data.load_course_dataset("sst2")


@pytest.mark.parametrize("name, total", [("imdb", 25000), ("rotten_tomatoes", 8530)])
def test_review_datasets_are_balanced_and_split_without_overlap(name, total):
    ds = data.load_course_dataset(name)
    assert sum(len(split) for split in ds.values()) == total
    assert ds["train"].features["label"].names == ["neg", "pos"]
    for split in ds.values():
        labels = split["label"]
        assert abs(sum(labels) / len(labels) - 0.5) < 0.01
    texts = {k: set(v["text"]) for k, v in ds.items()}
    # a few reviews are duplicated in the source; almost none may cross splits
    assert len(texts["train"] & texts["test"]) < 0.01 * len(texts["test"])
    assert all("<br" not in t for t in ds["train"]["text"][:2000])


def test_splits_are_deterministic():
    a = data.load_course_dataset("imdb")["test"]["text"][:5]
    data._load.cache_clear()
    b = data.load_course_dataset("imdb")["test"]["text"][:5]
    assert a == b


def test_conll2003_has_the_standard_splits_and_tags():
    ds = data.load_course_dataset("conll2003")
    assert {k: len(v) for k, v in ds.items()} == {"train": 14041, "validation": 3250, "test": 3453}
    names = ds["train"].features["ner_tags"].feature.names
    assert names == data.CONLL_TAGS
    first = ds["train"][0]
    assert first["tokens"][:3] == ["EU", "rejects", "German"]
    assert [names[i] for i in first["ner_tags"][:3]] == ["B-ORG", "O", "B-MISC"]
    for row in ds["validation"].select(range(500)):
        assert len(row["tokens"]) == len(row["ner_tags"]) > 0


def test_read_conll_rejects_malformed_lines(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("EU NNP B-NP B-ORG\nrejects VBZ\n")
    with pytest.raises(ValueError, match="bad.txt:2: expected 4 columns"):
        data.read_conll(bad)
    bad.write_text("EU NNP B-NP B-TEAM\n")
    with pytest.raises(ValueError, match="unknown NER tag"):
        data.read_conll(bad)


def test_read_conll_splits_sentences_and_skips_docstart(tmp_path):
    f = tmp_path / "ok.txt"
    f.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\n. . O O\n\nPeter NNP B-NP B-PER\n")
    assert data.read_conll(f) == [(["EU", "."], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=300), st.integers(0, 10_000))
def test_stratified_split_is_a_balanced_partition(labels, seed):
    parts = data.stratified_split_indices(labels, {"a": 0.6, "b": 0.2, "c": 0.2}, seed=seed)
    flat = sorted(i for idx in parts.values() for i in idx)
    assert flat == list(range(len(labels)))  # every example exactly once
    for label in set(labels):
        members = sum(1 for x in labels if x == label)
        in_a = sum(1 for i in parts["a"] if labels[i] == label)
        assert abs(in_a - 0.6 * members) <= 1


@pytest.mark.parametrize("fractions", [{}, {"a": 0.5}, {"a": 1.2, "b": -0.2}, {"a": 0.0, "b": 1.0}])
def test_stratified_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        data.stratified_split_indices([0, 1], fractions)
