import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, BertModel

from bert_workbook import training


@pytest.fixture(scope="module")
def tiny_encoder():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return BertModel(config).eval()


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


def test_linear_warmup_decay_shape():
    values = [training.linear_warmup_decay(s, 100, 10) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[-1] == pytest.approx(1 / 90)
    assert all(a >= b for a, b in zip(values[9:], values[10:]))


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
    from bert_workbook import checks

    assert checks.check_cls_classifier(training.ClsClassifier).passed

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
        result = checks.check_cls_classifier(wrong)
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
