import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, BertModel

from bert_workbook import assets, training


@pytest.fixture(scope="module")
def tiny_encoder(tiny_bert):
    return tiny_bert(1)


def tiny_dataset(tokenizer, n=32, flip=False):
    words = ["good great wonderful", "bad awful terrible"]
    texts = [f"this film was {words[i % 2]}" + " really" * (i % 5) for i in range(n)]
    labels = [(i % 2) ^ int(flip) for i in range(n)]
    return training.tokenize_dataset(Dataset.from_dict({"text": texts, "label": labels}), tokenizer, 32)


def test_cls_classifier_equals_sequence_classification_with_shared_weights(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=3)
    reference = BertForSequenceClassification(config).eval()
    ours = training.ClsClassifier(reference.bert, 3).eval()
    ours.classifier.load_state_dict(reference.classifier.state_dict())
    batch = tokenizer(["a short one", "a much longer sentence with padding after the short one"],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch), reference(**batch).logits)


def test_cls_classifier_rejects_bad_arguments(tiny_encoder):
    with pytest.raises(ValueError, match="num_labels"):
        training.ClsClassifier(tiny_encoder, 1)
    no_pooler = BertModel(tiny_encoder.config, add_pooling_layer=False)
    with pytest.raises(ValueError, match="pooler"):
        training.ClsClassifier(no_pooler, 2)
    training.ClsClassifier(no_pooler, 2, use_pooler=False)


def test_training_learns_a_separable_toy_task(tokenizer, tiny_encoder):
    import copy

    model = training.ClsClassifier(copy.deepcopy(tiny_encoder), 2)
    data = tiny_dataset(tokenizer)
    history = training.train_classifier(model, data, tokenizer, epochs=8, lr=3e-3, batch_size=8,
                                        progress=False, eval_dataset=data)
    assert len(history["step_loss"]) == 32 and len(history["eval_loss"]) == 8
    assert history["eval_loss"][-1] < history["eval_loss"][0]
    predictions = training.predict_logits(model, data, tokenizer).argmax(1).tolist()
    assert training.classification_metrics(data["label"], predictions, 2)["accuracy"] > 0.9
    assert not model.training


def test_training_is_reproducible_for_a_seed(tokenizer, tiny_encoder):
    import copy

    runs = []
    for _ in range(2):
        model = training.ClsClassifier(copy.deepcopy(tiny_encoder), 2)
        torch.nn.init.zeros_(model.classifier.weight)
        torch.nn.init.zeros_(model.classifier.bias)
        runs.append(training.train_classifier(model, tiny_dataset(tokenizer), tokenizer, epochs=1,
                                              lr=1e-3, batch_size=8, seed=3, progress=False)["step_loss"])
    assert runs[0] == runs[1]


def test_training_rejects_bad_data(tokenizer, tiny_encoder):
    model = training.ClsClassifier(tiny_encoder, 2)
    bad = tiny_dataset(tokenizer).map(lambda row: {"label": row["label"] + 1})
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        training.train_classifier(model, bad, tokenizer, progress=False)
    with pytest.raises(ValueError, match="empty"):
        training.train_classifier(model, tiny_dataset(tokenizer).select([]), tokenizer, progress=False)
    with pytest.raises(ValueError, match="'label'"):
        training.train_classifier(model, tiny_dataset(tokenizer).remove_columns("label"), tokenizer,
                                  progress=False)


def test_tokenize_dataset_rejects_empty_or_missing_column(tokenizer):
    with pytest.raises(ValueError, match="empty"):
        training.tokenize_dataset(Dataset.from_dict({"text": [], "label": []}), tokenizer)
    with pytest.raises(ValueError, match="no 'text' column"):
        training.tokenize_dataset(Dataset.from_dict({"sentence": ["a"]}), tokenizer)


def test_classification_metrics_values_and_bad_input():
    metrics = training.classification_metrics([0, 0, 1, 1], [0, 0, 0, 1], 2)
    assert metrics["accuracy"] == 0.75 and metrics["recall"] == [1.0, 0.5]
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    collapsed = training.classification_metrics([0, 1, 1, 1], [1, 1, 1, 1], 2)
    assert collapsed["accuracy"] == 0.75 and collapsed["recall"] == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        training.classification_metrics([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="must match"):
        training.classification_metrics([0, 1], [0], 2)
    with pytest.raises(ValueError, match="non-empty"):
        training.classification_metrics([], [], 2)
    with pytest.raises(ValueError, match="integer"):
        training.classification_metrics([0.5, 1.0], [0, 1], 2)


def test_tfidf_baseline_learns_words():
    texts = ["good film", "great film", "bad film", "awful film"] * 5
    labels = [1, 1, 0, 0] * 5
    predicted = training.tfidf_logistic_regression(texts, labels, ["good", "awful"])
    assert predicted.tolist() == [1, 0]
    with pytest.raises(ValueError):
        training.tfidf_logistic_regression(texts, labels[:-1], ["good"])


def test_sentence_features_match_the_classifier_input(tokenizer, tiny_encoder):
    data = tiny_dataset(tokenizer, n=6)
    features = training.sentence_features(tiny_encoder, data, tokenizer, batch_size=4, pooling="pooler")
    assert features.shape == (6, 32)
    model = training.ClsClassifier(tiny_encoder, 2).eval()
    with torch.no_grad():
        logits = training.predict_logits(model, data, tokenizer)
        expected = model.classifier(features)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert np.isfinite(features.numpy()).all()


def test_cls_check_passes_reference_and_names_common_mistakes():
    from bert_workbook.exercises import ex04

    assert ex04.check_cls_classifier(training.ClsClassifier).passed

    class NoMask(training.ClsClassifier):
        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            return super().forward(input_ids, None, token_type_ids)

    class MeanPooled(training.ClsClassifier):
        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).float()
            pooled = self.encoder.pooler.activation(self.encoder.pooler.dense((hidden * mask).sum(1) / mask.sum(1)))
            return self.classifier(self.dropout(pooled))

    class Stub(training.ClsClassifier):
        def forward(self, *args, **kwargs):
            raise NotImplementedError

    def raw_cls(encoder, n):
        return training.ClsClassifier(encoder, n, use_pooler=False)

    for wrong, says in [(NoMask, "attention_mask"), (MeanPooled, "averaged"), (raw_cls, "pooler"),
                        (Stub, "not implemented")]:
        result = ex04.check_cls_classifier(wrong)
        assert not result.passed and says in str(result), str(result)


def test_sentence_features_poolings(tokenizer, tiny_encoder):
    data = tiny_dataset(tokenizer, n=3)
    cls = training.sentence_features(tiny_encoder, data, tokenizer, pooling="cls")
    mean = training.sentence_features(tiny_encoder, data, tokenizer, pooling="mean")
    one = tokenizer(data["text"][0], return_tensors="pt")
    with torch.no_grad():
        hidden = tiny_encoder(**one).last_hidden_state[0]
    torch.testing.assert_close(cls[0], hidden[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mean[0], hidden.mean(0), atol=1e-5, rtol=1e-5)  # padding excluded
    with pytest.raises(ValueError, match="pooling"):
        training.sentence_features(tiny_encoder, data, tokenizer, pooling="max")


def test_predictions_keep_the_dataset_order(tokenizer, tiny_encoder):
    # lengths 4..9 tokens in a shuffled order: the length-sorted batches must be undone
    data = tiny_dataset(tokenizer, n=10).shuffle(seed=1)
    model = training.ClsClassifier(tiny_encoder, 2).eval()
    batched = training.predict_logits(model, data, tokenizer, batch_size=3)
    with torch.no_grad():
        one_by_one = torch.cat([model(**tokenizer(text, return_tensors="pt")) for text in data["text"]])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)
    features = training.sentence_features(tiny_encoder, data, tokenizer, batch_size=3, pooling="cls")
    with torch.no_grad():
        first = torch.cat([tiny_encoder(**tokenizer(text, return_tensors="pt")).last_hidden_state[:, 0]
                           for text in data["text"]])
    torch.testing.assert_close(features, first, atol=1e-5, rtol=1e-5)


def test_length_grouped_batches_pad_less_and_cover_every_example(tokenizer):
    data = tiny_dataset(tokenizer, n=200).shuffle(seed=0)
    lengths = np.array(training.token_lengths(data))
    grouped = list(training.length_grouped_sampler(data, 8, torch.Generator().manual_seed(0)))
    assert sorted(grouped) == list(range(200))
    shuffled = torch.randperm(200, generator=torch.Generator().manual_seed(0)).tolist()

    def padded(order):
        return sum(lengths[order[i:i + 8]].max() * len(order[i:i + 8]) for i in range(0, 200, 8))

    assert padded(grouped) < padded(shuffled)


def test_group_by_length_trains_and_excludes_a_sampler(tokenizer, tiny_encoder):
    import copy

    model = training.ClsClassifier(copy.deepcopy(tiny_encoder), 2)
    data = tiny_dataset(tokenizer)
    history = training.train_classifier(model, data, tokenizer, epochs=1, batch_size=8,
                                        group_by_length=True, progress=False)
    assert len(history["step_loss"]) == 4
    sampler = torch.utils.data.RandomSampler(range(len(data)))
    with pytest.raises(ValueError, match="not both"):
        training.train_classifier(model, data, tokenizer, sampler=sampler, group_by_length=True,
                                  progress=False)


def test_evaluating_during_training_does_not_change_the_training(tokenizer, tiny_encoder):
    import copy

    def step_losses(**evaluation):
        model = training.ClsClassifier(copy.deepcopy(tiny_encoder), 2, dropout=0.5)
        torch.nn.init.zeros_(model.classifier.weight)
        torch.nn.init.zeros_(model.classifier.bias)
        return training.train_classifier(model, tiny_dataset(tokenizer), tokenizer, epochs=2, lr=1e-3,
                                         batch_size=8, seed=1, progress=False, **evaluation)["step_loss"]

    data = tiny_dataset(tokenizer, n=8)
    assert step_losses() == step_losses(eval_dataset=data, eval_every=1)


def test_train_and_evaluate_runs_a_fixed_number_of_steps(tokenizer, tiny_encoder):
    import copy

    model = training.ClsClassifier(copy.deepcopy(tiny_encoder), 2)
    data = tiny_dataset(tokenizer, n=20)
    run = training.train_and_evaluate(model, data, data, tokenizer, steps=7, batch_size=4, lr=1e-3,
                                      progress=False)
    assert len(run["step_loss"]) == 7 and run["logits"].shape == (20, 2)
    assert set(run["metrics"]) == {"accuracy", "macro_f1", "recall"}
    with pytest.raises(ValueError, match="steps"):
        training.train_and_evaluate(model, data, data, tokenizer, steps=0)


def test_decay_groups_exempt_biases_and_layer_norms_and_skip_frozen_weights():
    model = training.SentenceClassifier(assets.load_encoder(), 2)
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    decayed, exempt = training.decay_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.01 and exempt["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and "LayerNorm" not in names[id(p)] for p in decayed["params"])
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in exempt["params"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(decayed["params"]) + len(exempt["params"]) == len(trainable)
    assert not any(p is model.encoder.embeddings.word_embeddings.weight for p in decayed["params"])


def label_sorted_split(n=300):
    """A split sorted by label, as the course's are: the first half negative, the second positive."""
    return Dataset.from_dict({"text": [f"sentence {i}" for i in range(n)], "label": [0] * (n // 2) + [1] * (n - n // 2)})


def test_tokenize_evaluation_set_shuffles_and_keeps_every_row(tokenizer, monkeypatch):
    monkeypatch.delenv("BERT_WORKBOOK_SMOKE", raising=False)
    sorted_split = label_sorted_split()
    full = training.tokenize_evaluation_set(sorted_split, tokenizer, 16)
    assert len(full) == 300 and sorted(full["text"]) == sorted(sorted_split["text"])
    assert full["label"][:100] != sorted_split["label"][:100]  # shuffled, not the sorted order
    assert full["text"] == training.tokenize_evaluation_set(sorted_split, tokenizer, 16)["text"]  # same seed, same order


def test_tokenize_evaluation_set_keeps_both_labels_in_a_smoke_run(tokenizer, monkeypatch):
    monkeypatch.setenv("BERT_WORKBOOK_SMOKE", "1")
    sorted_split = label_sorted_split()
    smoke = training.tokenize_evaluation_set(sorted_split, tokenizer, 16)
    assert len(smoke) == 100 and set(smoke["label"]) == {0, 1}


def test_tokenize_evaluation_set_rejects_an_empty_split(tokenizer):
    with pytest.raises(ValueError, match="empty"):
        training.tokenize_evaluation_set(Dataset.from_dict({"text": [], "label": []}), tokenizer)
