"""The measurement kit: cached partial fine-tuning equals the full model, heads converge,
intervals cover known effects, thresholds never see the scored half, bad input is refused."""

import copy

import numpy as np
import pytest
import torch
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import DataCollatorWithPadding

from bert_workbook import env, measure, training
from bert_workbook.exercises import ex04


@pytest.fixture(scope="module")
def tiny_encoder(tiny_bert):
    return tiny_bert(3)


@pytest.fixture(scope="module")
def tiny_data(tokenizer):
    words = ["good great wonderful", "bad awful terrible"]
    texts = [f"this film was {words[i % 2]}" + " really" * (i % 7) for i in range(40)]
    return training.tokenize_dataset(Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(40)]}),
                                     tokenizer, 32)


def _padded(tokenizer, data, rows):
    collator = DataCollatorWithPadding(tokenizer)
    return collator([{k: data[i][k] for k in ("input_ids", "attention_mask", "token_type_ids")} for i in rows])


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_cached_partial_model_computes_what_the_full_model_computes(tokenizer, tiny_encoder, tiny_data, layer):
    cached = measure.cache_hidden_states(tiny_encoder, tiny_data, tokenizer, layer=layer)
    top = measure.TopLayersClassifier(tiny_encoder, layer, 2, pooling="mean").eval()
    rows = list(range(0, 40, 3))
    batch = _padded(tokenizer, tiny_data, rows)
    with torch.no_grad():
        full = tiny_encoder(**batch).last_hidden_state
        hidden, mask = cached.batch(rows)
        ours = top.encode(hidden, mask)
        real = batch["attention_mask"].bool()
        torch.testing.assert_close(ours[real], full[real], atol=1e-5, rtol=1e-5)
        pooled = training.pool_hidden(full, batch["attention_mask"], "mean")
        torch.testing.assert_close(top(hidden, mask), top.classifier(pooled), atol=1e-5, rtol=1e-5)


def test_top_layers_classifier_pooler_matches_the_library_head(tokenizer, tiny_encoder, tiny_data):
    cached = measure.cache_hidden_states(tiny_encoder, tiny_data, tokenizer, layer=2)
    top = measure.TopLayersClassifier(tiny_encoder, 2, 2, pooling="pooler").eval()
    full = training.SentenceClassifier(tiny_encoder, 2, pooling="pooler").eval()
    full.classifier.load_state_dict(top.classifier.state_dict())
    rows = [0, 5, 6]
    with torch.no_grad():
        torch.testing.assert_close(top(*cached.batch(rows)), full(**_padded(tokenizer, tiny_data, rows)),
                                   atol=1e-5, rtol=1e-5)


def test_partial_fine_tuning_learns_and_leaves_the_encoder_alone(tokenizer, tiny_encoder, tiny_data):
    before = copy.deepcopy(tiny_encoder.state_dict())
    cached = measure.cache_hidden_states(tiny_encoder, tiny_data, tokenizer, layer=2)
    run = measure.train_top_layers(tiny_encoder, cached, cached, steps=60, lr=3e-3, batch_size=8, eval_every=20)
    assert run.curve.step == [20, 40, 60]
    assert run.metrics["accuracy"] > 0.9
    for name, value in tiny_encoder.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_partial_fine_tuning_refuses_mismatched_caches(tokenizer, tiny_encoder, tiny_data):
    low = measure.cache_hidden_states(tiny_encoder, tiny_data, tokenizer, layer=1)
    high = measure.cache_hidden_states(tiny_encoder, tiny_data, tokenizer, layer=2)
    with pytest.raises(ValueError, match="different layers"):
        measure.train_top_layers(tiny_encoder, low, high, steps=2)
    with pytest.raises(ValueError, match="layer"):
        measure.cache_hidden_states(tiny_encoder, tiny_data, tokenizer, layer=9)


def test_feature_cache_matches_sentence_features_and_is_reused(tokenizer, tiny_encoder, tiny_data, tmp_path):
    measure.clear_feature_cache()
    features = measure.encode_features(tiny_encoder, tiny_data, tokenizer, cache_dir=tmp_path)
    assert features.cls.shape == (40, 4, 32) and features.num_layers == 3
    for pooling in ("mean", "cls", "pooler"):
        expected = training.sentence_features(tiny_encoder, tiny_data, tokenizer, pooling=pooling)
        torch.testing.assert_close(features.get(pooling), expected, atol=1e-5, rtol=1e-5)
    assert measure.encode_features(tiny_encoder, tiny_data, tokenizer) is features
    measure.clear_feature_cache()
    from_disk = measure.encode_features(tiny_encoder, tiny_data, tokenizer, cache_dir=tmp_path)
    torch.testing.assert_close(from_disk.mean, features.mean)
    other = tiny_data.select(range(10))
    assert measure.dataset_key("tiny", other) != measure.dataset_key("tiny", tiny_data)
    with pytest.raises(ValueError, match="layer"):
        features.get("mean", layer=7)


def test_disk_cache_follows_the_environment_and_the_weights(tokenizer, tiny_bert, tiny_data, tmp_path, monkeypatch):
    encoder = tiny_bert(2)
    monkeypatch.setenv(env.CACHE_ENV_VAR, str(tmp_path))
    measure.clear_feature_cache()
    features = measure.encode_features(encoder, tiny_data, tokenizer)
    states = measure.cache_hidden_states(encoder, tiny_data, tokenizer, layer=1)
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.pt")) == ["features", "states"]
    measure.clear_feature_cache()  # a new kernel: read back from disk, equal to the computed values
    torch.testing.assert_close(measure.encode_features(encoder, tiny_data, tokenizer).mean,
                               features.mean)
    again = measure.cache_hidden_states(encoder, tiny_data, tokenizer, layer=1)
    assert all(torch.equal(a, b) for a, b in zip(again.states, states.states))
    assert torch.equal(again.labels, states.labels) and again.layer == 1
    with torch.no_grad():  # other weights in the same model: computed afresh, never read stale
        encoder.embeddings.word_embeddings.weight.add_(torch.randn_like(encoder.embeddings.word_embeddings.weight))
    measure.clear_feature_cache()
    changed = measure.encode_features(encoder, tiny_data, tokenizer)
    assert not torch.allclose(changed.mean, features.mean)
    assert len(list(tmp_path.glob("features-*.pt"))) == 2
    monkeypatch.delenv(env.CACHE_ENV_VAR)
    assert env.cache_dir() is None
    measure.clear_feature_cache()


def test_the_memory_cache_never_returns_features_of_other_weights(tokenizer, tiny_bert, tiny_data):
    """Encode, change the encoder's weights in place, encode again with nothing cleared: the new
    weights' features come back, not the first ones (the path the notebooks once dodged by hand)."""
    encoder = tiny_bert(2)
    measure.clear_feature_cache()
    first = measure.encode_features(encoder, tiny_data, tokenizer)
    assert measure.encode_features(encoder, tiny_data, tokenizer) is first  # same weights: reused
    with torch.no_grad():
        encoder.encoder.layer[-1].output.dense.weight.mul_(2.0)
    second = measure.encode_features(encoder, tiny_data, tokenizer)
    assert second is not first and not torch.allclose(second.mean, first.mean)
    torch.testing.assert_close(second.get("mean"), training.sentence_features(encoder, tiny_data, tokenizer, pooling="mean"),
                               atol=1e-5, rtol=1e-5)
    measure.clear_feature_cache()


def _separable(n=400, seed=0, skew=0.5):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < skew).astype(int)
    x = rng.normal(size=(n, 5)) + 1.5 * y[:, None] * np.array([1, 0.5, 0, 0, 0])
    return x, y


def test_linear_head_converges_to_the_logistic_regression_optimum():
    from sklearn.linear_model import LogisticRegression

    x, y = _separable()
    predict = measure.fit_linear_head(x, y, l2=0.1)
    assert predict.converged
    xs = (x - x.mean(0)) / x.std(0, ddof=1)
    # two rows of weights, each penalised: the margin's penalty is l2/4 |w|^2, i.e. C = 2 / (l2 n)
    reference = LogisticRegression(C=2 / (0.1 * len(y)), tol=1e-8, max_iter=10_000).fit(xs, y)
    ours = measure.margin(predict(x))
    np.testing.assert_allclose(ours, reference.decision_function(xs), atol=2e-3)


def test_minibatch_head_reaches_the_full_batch_optimum():
    x, y = _separable(seed=1)
    full = measure.fit_linear_head(x, y, l2=0.1)
    run = measure.train_head(x, y, eval_features=x, eval_labels=y, steps=3000, batch_size=32, lr=1e-2,
                             l2=0.1, eval_every=500)
    assert np.corrcoef(measure.margin(run.logits), measure.margin(full(x)))[0, 1] > 0.999
    assert run.curve.settled("loss", last=3, tolerance=0.01)


def test_curve_last_change_is_none_for_a_run_evaluated_once():
    curve = measure.Curve()
    assert curve.last_change() is None
    curve.add(10, 0.7, {"macro_f1": 0.5})
    assert curve.last_change() is None  # a smoke run's single evaluation: no change to report
    curve.add(20, 0.6, {"macro_f1": 0.6234})
    assert curve.last_change() == pytest.approx(0.123)
    assert curve.last_change("loss") != curve.last_change("loss")  # NaN: the metric was not given


def test_balanced_batches_draw_both_classes_equally():
    labels = torch.tensor([0] * 95 + [1] * 5)
    order = measure._batch_order(labels, 500, 16, torch.Generator().manual_seed(0), balanced=True)
    assert abs(labels[order].float().mean().item() - 0.5) < 0.03
    plain = measure._batch_order(labels, 500, 16, torch.Generator().manual_seed(0), balanced=False)
    assert torch.equal(torch.bincount(plain[:100], minlength=100), torch.ones(100, dtype=torch.long))


def test_weighted_cross_entropy_normalisations():
    logits = torch.tensor([[2.0, 0.0], [0.5, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 0])
    weights = torch.tensor([0.5, 10.0])
    plain = torch.nn.functional.cross_entropy(logits, labels)
    # a batch with no minority example: PyTorch divides by the weights' sum, so the weight cancels
    torch.testing.assert_close(measure.weighted_cross_entropy(weights, "pytorch")(logits, labels), plain)
    torch.testing.assert_close(measure.weighted_cross_entropy(weights, "per_example")(logits, labels), 0.5 * plain)
    with pytest.raises(ValueError, match="normalization"):
        measure.weighted_cross_entropy(weights, "sum")


def test_logit_adjustment_undoes_a_known_prior():
    prior = torch.tensor([0.9, 0.1])
    balanced_logits = torch.tensor([[0.2, 0.0], [0.0, 0.3]])
    skewed_logits = balanced_logits + prior.log()
    torch.testing.assert_close(measure.adjust_logits(skewed_logits, prior), balanced_logits)
    loss = measure.logit_adjusted_cross_entropy(prior)
    labels = torch.tensor([0, 1])
    torch.testing.assert_close(loss(balanced_logits, labels),
                               torch.nn.functional.cross_entropy(skewed_logits, labels))
    with pytest.raises(ValueError, match="prior"):
        measure.adjust_logits(skewed_logits, [0.5, 0.3, 0.2])


def test_threshold_tuning_never_sees_the_scored_half():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    scores = rng.normal(size=400) + y
    first = measure.held_out_threshold_f1(scores, y, seed=3)
    half = measure.stratified_halves(y, seed=3)
    assert half.sum() == 200 and y[half].sum() == 100
    # scrambling the scores of the other half changes what is tuned there, never the threshold
    # tuned on this half
    scrambled = scores.copy()
    scrambled[~half] = rng.normal(size=200) * 5
    again = measure.held_out_threshold_f1(scrambled, y, seed=3)
    assert again["thresholds"][0] == first["thresholds"][0]
    assert again["thresholds"][1] != first["thresholds"][1]
    # and the first threshold is the best one on its own half
    assert first["thresholds"][0] == measure.best_threshold(scores[half], y[half])


def test_best_threshold_finds_a_clean_split():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    t = measure.best_threshold(scores, y)
    assert 0.3 < t <= 0.7


def test_decision_scores_reports_the_three_views():
    logits = torch.tensor([[0.0, -5.0 + i / 10] for i in range(40)])
    y = np.array([0] * 20 + [1] * 20)
    scores = measure.decision_scores(logits, y, prior=[0.5, 0.5])
    assert scores["AUC"] == 1.0
    assert scores["argmax F1"] == pytest.approx(1 / 3)
    assert scores["tuned-threshold F1"] > 0.9


@pytest.mark.parametrize("call, match", [
    (lambda: measure.fit_linear_head(np.zeros((3, 2)), [0, 1]), "same length"),
    (lambda: measure.fit_linear_head(np.zeros((3, 2)), [0, 1, 2], num_labels=2), r"\[0, 2\)"),
    (lambda: measure.fit_linear_head(np.zeros((0, 2)), []), "non-empty"),
    (lambda: measure.fit_linear_head([[0.0, float("nan")], [1.0, 1.0]], [0, 1]), "NaN"),
    (lambda: measure.fit_linear_head(np.zeros((2, 2)), [0.5, 1.0]), "integer"),
    (lambda: measure.evaluate_logits(torch.zeros(3, 2), [0, 1]), "same length"),
    (lambda: measure.evaluate_logits(torch.zeros(2, 2), [0, 2]), r"\[0, 2\)"),
    (lambda: measure.train_head(np.zeros((4, 2)), [0, 1, 0, 1], eval_features=np.zeros((2, 2)),
                                eval_labels=[0, 1], steps=0), "positive"),
    (lambda: measure.held_out_threshold_f1([0.1, 0.2], [0, 1, 1]), "same length"),
    (lambda: measure.choose_l2(np.zeros((10, 2)), [0, 1] * 5, grid=[]), "grid"),
])
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_sentence_classifier_heads_and_prior_bias(tokenizer, tiny_encoder, tiny_data):
    model = training.SentenceClassifier(tiny_encoder, 2, pooling="mean", class_prior=[0.95, 0.05]).eval()
    torch.testing.assert_close(model.classifier.bias, torch.tensor([0.95, 0.05]).log())
    batch = _padded(tokenizer, tiny_data, [0, 3])
    with torch.no_grad():
        hidden = tiny_encoder(**batch).last_hidden_state
        torch.testing.assert_close(model(**batch), model.classifier(training.pool_hidden(hidden, batch["attention_mask"], "mean")))
    with pytest.raises(ValueError, match="pooling"):
        training.SentenceClassifier(tiny_encoder, 2, pooling="max")
    with pytest.raises(ValueError, match="class_prior"):
        training.SentenceClassifier(tiny_encoder, 2, class_prior=[0.5, 0.6])


def test_training_step_check_passes_the_reference_and_names_each_mistake():
    assert ex04.check_training_step(training.training_step).passed

    def stub(*args, **kwargs):
        raise NotImplementedError

    assert "not implemented" in ex04.check_training_step(stub).message
    assert not ex04.check_training_step(None).passed
    assert not ex04.check_training_step(lambda *a, **k: None).passed
    # each named mistake, written out by hand: tests/test_exercise_training.py


def test_training_step_check_wants_a_float_loss_and_rejects_wrong_returns():
    from torch import nn

    def step(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None, returns="tensor"):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        loss = nn.functional.cross_entropy(model(**inputs), batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        schedule.step()
        return {"tensor": loss, "float": loss.item(), "string": "loss", "zero": 0.0}[returns]

    tensor = ex04.check_training_step(step)  # notebook 04's loop averages the losses with numpy
    assert not tensor.passed and "loss.item()" in tensor.message
    assert ex04.check_training_step(lambda *a, **k: step(*a, **k, returns="float")).passed
    assert not ex04.check_training_step(lambda *a, **k: step(*a, **k, returns="string")).passed
    assert not ex04.check_training_step(lambda *a, **k: step(*a, **k, returns="zero")).passed


# --- live states, length grouping, early stopping, cross-validated l2 for any loss, verdicts ---

def test_live_states_without_noise_equal_the_cached_states(tokenizer, tiny_encoder, tiny_data):
    cached = measure.cache_hidden_states(tiny_encoder, tiny_data, tokenizer, layer=2)
    live = measure.LiveStates(tiny_encoder, tiny_data, tokenizer, layer=2)
    rows = [0, 3, 7, 12]
    (a, mask_a), (b, mask_b) = live.batch(rows), cached.batch(rows)
    assert torch.equal(mask_a, mask_b)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(live.lengths(), cached.lengths())


def test_live_states_draw_new_noise_per_batch_and_leave_the_encoder_in_eval_mode(tokenizer, tiny_encoder, tiny_data):
    from bert_workbook import noise

    live = measure.LiveStates(tiny_encoder, tiny_data, tokenizer, layer=1)
    handle = noise.add_neftune_noise(tiny_encoder.get_input_embeddings(), 5.0, torch.Generator().manual_seed(0))
    try:
        first, second = live.batch([0, 1])[0], live.batch([0, 1])[0]
    finally:
        handle.remove()
    assert not torch.equal(first, second)
    assert not tiny_encoder.training and not tiny_encoder.get_input_embeddings().training
    torch.testing.assert_close(live.batch([0, 1])[0], live.batch([0, 1])[0])  # hook removed: no noise


def test_group_by_length_keeps_every_example_and_shrinks_padding():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 60, (200,), generator=generator)
    order = torch.randperm(200, generator=generator)[:192].view(12, 16)
    grouped = measure._group_by_length(order, lengths, torch.Generator().manual_seed(1), chunk=4)
    assert grouped.shape == order.shape
    assert sorted(grouped.flatten().tolist()) == sorted(order.flatten().tolist())
    padded = lambda o: int(sum(lengths[row].max() * len(row) for row in o))  # noqa: E731
    assert padded(grouped) < 0.8 * padded(order)


def test_train_top_layers_keeps_a_snapshot_per_evaluation(tokenizer, tiny_encoder, tiny_data):
    cached = measure.cache_hidden_states(tiny_encoder, tiny_data, tokenizer, layer=2)
    run = measure.train_top_layers(tiny_encoder, cached, cached, steps=20, lr=3e-3, batch_size=8, eval_every=10,
                                   keep_logits=True, group_by_length=True)
    assert sorted(run.snapshots) == [10, 20]
    assert torch.equal(run.snapshots[20], run.logits)


def test_early_stopping_picks_on_one_half_and_scores_on_the_other():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 100)
    good = np.stack([np.zeros(200), labels * 2.0 + rng.normal(0, 1, 200)], axis=1)
    noise_only = np.stack([np.zeros(200), rng.normal(0, 1, 200)], axis=1)
    result = measure.early_stopped_scores({10: noise_only, 20: good, 30: noise_only}, labels)
    assert result["steps"] == [20, 20]
    assert result["AUC"] > 0.8
    with pytest.raises(ValueError, match="keep_logits"):
        measure.early_stopped_scores({}, labels)


def test_choose_l2_picks_strong_regularisation_for_noise_and_weak_for_a_clear_signal():
    from bert_workbook import losses

    rng = np.random.default_rng(0)
    grid = (1e-3, 1e-1, 10.0, 1000.0)
    y = np.array([0, 1] * 40)
    noise = rng.normal(size=(80, 60))                                   # nothing to learn, many weights
    signal = rng.normal(size=(80, 3)) + y[:, None] * np.array([4.0, 0, 0])
    assert measure.choose_l2(noise, y, grid=grid) >= 10.0
    assert measure.choose_l2(signal, y, grid=grid) < 10.0
    focal = lambda z, t: losses.focal_loss(z, t, gamma=2.0)  # noqa: E731
    assert measure.choose_l2(signal, y, grid=grid, score="auc", loss_fn=focal) < 1000.0
    with pytest.raises(ValueError, match="score"):
        measure.choose_l2(signal, y, score="accuracy")


def test_choose_l2_resamples_inside_the_folds():
    """Oversampling before cross-validation puts copies of a positive on both sides of a fold. With
    ``resample=``, each fold's fitting rows alone are resampled: the function sees only them, and
    the rows it returns are fitted on."""
    from bert_workbook import imbalance

    rng = np.random.default_rng(3)
    y = np.array([0] * 90 + [1] * 30)
    x = rng.normal(size=(120, 4)) + y[:, None] * np.array([1.0, 0, 0, 0])
    seen = []

    def spy(labels, seed):
        seen.append(np.bincount(labels, minlength=2).tolist())
        return imbalance.oversample_minority(labels, seed)

    grid = (0.1, 10.0)
    measure.choose_l2(x, y, grid=grid, score="auc", folds=3, resample=spy)
    assert seen == [[60, 20]] * (3 * len(grid))  # two thirds of each class: the fold's fitting rows
    everything = lambda labels, seed: np.arange(len(labels))  # noqa: E731
    assert measure.choose_l2(x, y, grid=grid, folds=3, resample=everything) == measure.choose_l2(x, y, grid=grid, folds=3)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-3, 3)), min_size=4, max_size=40), st.integers(0, 2**20))
def test_weighted_metrics_match_scikit_learn(rows, seed):
    """The vectorised resampling metrics equal scikit-learn's AUC and macro-F1 with sample weights
    (ties in the scores included), and macro_f1_at_thresholds equals f1_score at every threshold."""
    from sklearn.metrics import f1_score, roc_auc_score

    from bert_workbook import stats

    y = np.array([label for label, _ in rows])
    scores = np.array([score for _, score in rows], dtype=float) + 0.5 * y * (seed % 2)
    weights = np.concatenate(list(stats.resample_weights(len(y), resamples=5, seed=seed)))
    auc = measure.weighted_auc(y, scores, weights)
    f1 = measure.weighted_argmax_f1(y, (scores > 0).astype(int), weights)
    for row, w in enumerate(weights):
        kept = w > 0
        if len(np.unique(y[kept])) == 2:
            assert auc[row] == pytest.approx(roc_auc_score(y, scores, sample_weight=w))
        assert f1[row] == pytest.approx(f1_score(y, (scores > 0).astype(int), average="macro", labels=[0, 1],
                                                 sample_weight=w, zero_division=0))
    thresholds, at = measure.macro_f1_at_thresholds(scores, y)
    for threshold, value in zip(thresholds, at):
        assert value == pytest.approx(f1_score(y, (scores >= threshold).astype(int), average="macro", labels=[0, 1],
                                               zero_division=0))

