import math

import pytest
import torch

from bert_workbook import assets, masking, mlm
from bert_workbook.data import load_mlm_corpus


@pytest.fixture(scope="module")
def masked_lm():
    return assets.load_masked_lm("embedded")


def test_token_windows_have_exact_length_and_special_tokens(tokenizer):
    texts = ["the cat sat on the mat", "a second, longer text about the film and its plot"] * 20
    windows = mlm.token_windows(tokenizer, texts, 16)
    assert windows.shape[1] == 16 and len(windows) > 5
    assert (windows[:, 0] == tokenizer.cls_token_id).all()
    assert (windows[:, -1] == tokenizer.sep_token_id).all()
    body = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    assert windows[0, 1:1 + len(body)].tolist() == body  # text order is kept


@pytest.mark.parametrize("length", [2, 0, 8.5])
def test_token_windows_rejects_bad_length(tokenizer, length):
    with pytest.raises(ValueError, match="length"):
        mlm.token_windows(tokenizer, ["text"], length)


def test_token_windows_rejects_a_single_string(tokenizer):
    with pytest.raises(TypeError, match="sequence of strings"):
        mlm.token_windows(tokenizer, "one string", 8)


def test_special_tokens_mask_marks_cls_sep_pad(tokenizer):
    ids = torch.tensor([[101, 2023, 102, 0, 103]])
    assert mlm.special_tokens_mask(ids, tokenizer).tolist() == [[1, 0, 1, 1, 1]]


def test_embedded_masked_lm_is_tied_and_complete(masked_lm):
    decoder = masked_lm.cls.predictions.decoder.weight
    assert decoder is masked_lm.bert.embeddings.word_embeddings.weight
    assert not masked_lm.training


def test_fresh_head_differs_but_encoder_matches(masked_lm):
    torch.manual_seed(0)
    fresh = assets.load_masked_lm("embedded", head="fresh")
    encoder = assets.load_encoder("embedded")
    word = "embeddings.word_embeddings.weight"
    assert torch.equal(fresh.bert.get_parameter(word), encoder.get_parameter(word))
    assert torch.equal(fresh.bert.get_parameter(word), masked_lm.bert.get_parameter(word))
    layer = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(fresh.bert.get_parameter(layer), encoder.get_parameter(layer))
    assert not torch.equal(fresh.cls.predictions.transform.dense.weight,
                           masked_lm.cls.predictions.transform.dense.weight)


def test_load_masked_lm_rejects_bad_head():
    with pytest.raises(ValueError, match="head"):
        assets.load_masked_lm("embedded", head="random")


def test_training_record_matches_weights():
    record = assets.masked_lm_training_record()
    assert record["steps"] > 0
    assert record["held_out_accuracy"] > record["before"]["held_out_accuracy"]


def test_fill_mask_returns_sorted_probabilities(masked_lm, tokenizer):
    (top,) = mlm.fill_mask(masked_lm, tokenizer, "this movie was [MASK] and i loved it.", top_k=5)
    probs = [p for _, p in top]
    assert len(top) == 5 and probs == sorted(probs, reverse=True)
    assert all(0 < p <= 1 for p in probs)
    two = mlm.fill_mask(masked_lm, tokenizer, "the [MASK] was [MASK].", top_k=3)
    assert len(two) == 2


def test_fill_mask_is_better_than_chance_on_a_plain_sentence(masked_lm, tokenizer):
    # a trained head puts far more than 1/30522 of its mass on its top guess
    (top,) = mlm.fill_mask(masked_lm, tokenizer, "i went to the [MASK] to watch the new film.")
    assert top[0][1] > 100 / tokenizer.vocab_size


def test_fill_mask_rejects_text_without_mask(masked_lm, tokenizer):
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        mlm.fill_mask(masked_lm, tokenizer, "no blank here")
    with pytest.raises(ValueError, match="top_k"):
        mlm.fill_mask(masked_lm, tokenizer, "a [MASK]", top_k=0)


def test_logits_at_labels_matches_full_forward(masked_lm, tokenizer):
    ids = tokenizer(["the film was a great [MASK] of time."], return_tensors="pt")["input_ids"]
    labels = torch.full_like(ids, masking.IGNORE_INDEX)
    labels[0, 3] = ids[0, 3]
    labels[0, 6] = 2051
    fast, targets = mlm.logits_at_labels(masked_lm, ids, labels)
    with torch.no_grad():
        full = masked_lm(input_ids=ids).logits[labels != masking.IGNORE_INDEX]
    assert targets.tolist() == [ids[0, 3].item(), 2051]
    torch.testing.assert_close(fast.detach(), full, atol=1e-4, rtol=1e-4)


def test_accuracy_by_status_counts_every_selected_position(masked_lm, tokenizer):
    windows = mlm.token_windows(tokenizer, load_mlm_corpus("validation")[:40], 32)[:16]
    special = mlm.special_tokens_mask(windows, tokenizer)
    inputs, labels = masking.mask_tokens(windows, special, tokenizer.vocab_size,
                                         tokenizer.mask_token_id, 0.3,
                                         torch.Generator().manual_seed(0))
    report = mlm.accuracy_by_status(masked_lm, windows, inputs, labels, tokenizer.mask_token_id,
                                    batch_size=5)
    parts = sum(report[s]["positions"] for s in ("[MASK]", "random", "kept"))
    assert parts == report["all selected"]["positions"] == int((labels != -100).sum())
    assert 0 <= report["all selected"]["accuracy"] <= 1
    # kept tokens are visible, so a trained model gets them right more often than hidden ones
    assert report["kept"]["accuracy"] > report["[MASK]"]["accuracy"]


def test_accuracy_by_status_rejects_mismatched_shapes(masked_lm):
    a = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="shape"):
        mlm.accuracy_by_status(masked_lm, a, a, torch.zeros(2, 5, dtype=torch.long), 103)


def test_training_lowers_the_loss_of_a_fresh_head(tokenizer):
    torch.manual_seed(0)
    model = assets.load_masked_lm("embedded", head="fresh")
    model.bert.requires_grad_(False)  # head only: quick, and enough to see learning
    windows = mlm.token_windows(tokenizer, load_mlm_corpus("train")[:200], 32)
    losses = mlm.train_masked_lm(model, windows, tokenizer, steps=12, batch_size=8, lr=1e-3,
                                 progress=False)
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5
    assert not model.training


def test_train_masked_lm_rejects_bad_arguments(tokenizer):
    model = torch.nn.Linear(2, 2)
    windows = torch.zeros(4, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="steps"):
        mlm.train_masked_lm(model, windows, tokenizer, steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        mlm.train_masked_lm(model, windows, tokenizer, steps=1, batch_size=16)


def test_mlm_corpus_splits_barely_overlap():
    train = set(load_mlm_corpus("train"))
    validation = [text for text in load_mlm_corpus("validation") if len(text.split()) > 8]
    assert len(validation) > 1000
    # Short news lines ("LONDON 1996-08-30") repeat by nature, and IMDB holds 98 duplicated
    # reviews (25,000 texts, 24,902 distinct), so a few long texts appear in both splits.
    overlap = sum(text in train for text in validation)
    assert overlap / len(validation) < 0.01


def test_mlm_corpus_rejects_unknown_split():
    with pytest.raises(ValueError, match="split"):
        load_mlm_corpus("dev")


def test_missing_masked_lm_weights_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "MASKED_LM_WEIGHTS", tmp_path / "masked_lm.safetensors")
    with pytest.raises(assets.AssetUnavailableError, match="tools/train_mlm.py"):
        assets.load_masked_lm("embedded")


def test_token_counts_and_most_frequent_ids(tokenizer):
    counts = mlm.token_counts(tokenizer, ["the cat and the dog", "the end"])
    the = tokenizer.convert_tokens_to_ids("the")
    assert counts[the] == 3 and counts.sum() == 7 and len(counts) == tokenizer.vocab_size
    top = mlm.most_frequent_ids(counts, 2)
    assert top[0] == the
    assert the not in mlm.most_frequent_ids(counts, 2, exclude=[the]).tolist()
    with pytest.raises(ValueError, match="k must be"):
        mlm.most_frequent_ids(counts, 0)
    with pytest.raises(TypeError, match="sequence of strings"):
        mlm.token_counts(tokenizer, "the cat")


def test_train_only_top_freezes_all_but_the_top_layer_and_the_head():
    model = assets.load_masked_lm("embedded")
    top = len(model.bert.encoder.layer) - 1
    names = mlm.train_only_top(model)
    assert names and all(n.startswith((f"bert.encoder.layer.{top}.", "cls.")) for n in names)
    assert "cls.predictions.bias" in names
    assert not model.bert.embeddings.word_embeddings.weight.requires_grad  # also the tied output weights
    assert mlm.train_only_top(model, layers=0) == [n for n in names if n.startswith("cls.")]
    with pytest.raises(ValueError, match="layers"):
        mlm.train_only_top(model, layers=99)
    with pytest.raises(TypeError, match="masked LM"):
        mlm.train_only_top(torch.nn.Linear(2, 2))


def test_masked_lm_loss_takes_another_loss_at_the_labelled_positions(masked_lm, tokenizer):
    from bert_workbook import losses

    windows = mlm.token_windows(tokenizer, load_mlm_corpus("validation")[:20], 32)[:4]
    inputs, labels = masking.mask_tokens(windows, mlm.special_tokens_mask(windows, tokenizer), tokenizer.vocab_size,
                                         tokenizer.mask_token_id, generator=torch.Generator().manual_seed(0))
    masked_lm.eval()
    with torch.no_grad():
        plain = mlm.masked_lm_loss(masked_lm, inputs, labels)
        focal0 = mlm.masked_lm_loss(masked_lm, inputs, labels, lambda z, t: losses.focal_loss(z, t, gamma=0.0))
        focal2 = mlm.masked_lm_loss(masked_lm, inputs, labels, lambda z, t: losses.focal_loss(z, t, gamma=2.0))
    torch.testing.assert_close(plain, focal0)
    assert focal2 < plain


def test_top_logits_from_states_below_the_top_match_the_full_forward(masked_lm, tokenizer):
    windows = mlm.token_windows(tokenizer, load_mlm_corpus("validation")[:20], 32)[:5]
    inputs, labels = masking.mask_tokens(windows, mlm.special_tokens_mask(windows, tokenizer), tokenizer.vocab_size,
                                         tokenizer.mask_token_id, generator=torch.Generator().manual_seed(1))
    masked_lm.eval()
    full, targets = mlm.logits_at_labels(masked_lm, inputs, labels)
    for layers in (1, 2):
        below = mlm.hidden_below_top(masked_lm, inputs, layers=layers, batch_size=2)
        assert below.shape == (*inputs.shape, masked_lm.config.hidden_size)
        fast, fast_targets = mlm.top_logits_at_labels(masked_lm, below, labels, layers=layers)
        assert torch.equal(fast_targets, targets)
        torch.testing.assert_close(fast, full.detach(), atol=1e-4, rtol=1e-4)


def test_top_logits_reject_bad_input(masked_lm):
    with pytest.raises(ValueError, match="layers"):
        mlm.hidden_below_top(masked_lm, torch.zeros(1, 4, dtype=torch.long), layers=0)
    with pytest.raises(ValueError, match="do not match"):
        mlm.top_logits_at_labels(masked_lm, torch.zeros(1, 4, masked_lm.config.hidden_size), torch.zeros(1, 5))
    with pytest.raises(TypeError, match="masked LM"):
        mlm.hidden_below_top(torch.nn.Linear(2, 2), torch.zeros(1, 4, dtype=torch.long))
