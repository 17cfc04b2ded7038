import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_workbook import imbalance

label_lists = st.lists(st.integers(0, 3), min_size=1, max_size=60)


@settings(max_examples=50, deadline=None)
@given(labels=label_lists, seed=st.integers(0, 2**16))
def test_oversampling_keeps_every_example_and_balances(labels, seed):
    rows = imbalance.oversample_minority(labels, seed)
    assert set(range(len(labels))) <= set(rows.tolist())          # nothing lost
    assert rows[:len(labels)].tolist() == list(range(len(labels)))  # every example once, in order
    counts = np.bincount(np.asarray(labels)[rows])
    present = counts[counts > 0]
    assert (present == present.max()).all() and present.max() == max(np.bincount(labels))


def test_oversampling_is_seeded_and_respects_factors():
    labels = [0] * 50 + [1] * 5 + [2] * 10
    a, b = imbalance.oversample_minority(labels, 1), imbalance.oversample_minority(labels, 1)
    assert a.tolist() == b.tolist()
    assert a.tolist() != imbalance.oversample_minority(labels, 2).tolist()
    rows = imbalance.oversample_minority(labels, 0, factors={1: 3})
    assert np.bincount(np.asarray(labels)[rows]).tolist() == [50, 15, 10]


def test_oversampling_rejects_bad_input():
    labels = [0, 0, 1]
    with pytest.raises(ValueError, match="does not occur"):
        imbalance.oversample_minority(labels, 0, factors={5: 2})
    with pytest.raises(ValueError, match=">= 1"):
        imbalance.oversample_minority(labels, 0, factors={1: 0.5})
    with pytest.raises(ValueError, match="number"):
        imbalance.oversample_minority(labels, 0, factors={1: float("nan")})
    with pytest.raises(ValueError, match="non-empty"):
        imbalance.oversample_minority([], 0)


@settings(max_examples=50, deadline=None)
@given(labels=label_lists, seed=st.integers(0, 2**16))
def test_undersampling_cuts_to_the_smallest_class_without_duplicates(labels, seed):
    rows = imbalance.undersample_majority(labels, seed)
    assert len(set(rows.tolist())) == len(rows)
    counts = np.bincount(np.asarray(labels)[rows])
    present = counts[counts > 0]
    assert (present == min(c for c in np.bincount(labels) if c)).all()


def test_undersampling_rejects_bad_factors():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        imbalance.undersample_majority([0, 0, 1], 0, factors={0: 1.5})


def test_imbalanced_subset_counts_and_errors():
    labels = [0] * 30 + [1] * 30
    rows = imbalance.imbalanced_subset(labels, {0: 20, 1: 2}, seed=0)
    assert np.bincount(np.asarray(labels)[rows]).tolist() == [20, 2]
    assert rows.tolist() == sorted(rows.tolist())
    with pytest.raises(ValueError, match="cannot take"):
        imbalance.imbalanced_subset(labels, {1: 31}, seed=0)


def test_balanced_class_weights_equalise_class_totals():
    labels = [0] * 90 + [1] * 10
    weights = imbalance.balanced_class_weights(labels, 2)
    assert weights.tolist() == pytest.approx([100 / 180, 100 / 20])
    totals = np.bincount(labels) * weights.numpy()
    assert totals[0] == pytest.approx(totals[1])
    assert imbalance.balanced_class_weights([0, 0], 3).tolist()[1:] == [0.0, 0.0]
    with pytest.raises(ValueError):
        imbalance.balanced_class_weights([0, 3], 2)


def test_balanced_sampler_draws_classes_equally():
    labels = [0] * 950 + [1] * 50
    drawn = list(imbalance.balanced_sampler(labels, seed=0, num_samples=20_000))
    share = np.mean(np.asarray(labels)[drawn])
    assert abs(share - 0.5) < 0.02
    assert drawn == list(imbalance.balanced_sampler(labels, seed=0, num_samples=20_000))


def test_doctor_flags_a_collapsed_model_and_passes_a_healthy_one():
    y = np.array([0, 1] * 50)
    train = [0] * 95 + [1] * 5
    constant = torch.tensor([[2.0, -1.0]]).repeat(100, 1)
    report = imbalance.diagnose_collapse(constant, y, train, step_loss=[0.7] * 5 + [0.2] * 5)
    assert report.collapsed and report.prediction_entropy_bits == 0
    assert report.recall == [1.0, 0.0]
    text = str(report)
    assert "imbalanced" in text and "collapsed: 100%" in text and "ignores the text" in text
    assert "did not fall below" in text  # 0.2 ~ the prior loss of 95/5 (0.199)

    healthy = torch.nn.functional.one_hot(torch.as_tensor(y), 2).float() * 3
    report = imbalance.diagnose_collapse(healthy, y, [0, 1] * 50, step_loss=[0.7] * 5 + [0.1] * 5,
                                         id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    assert not report.collapsed and report.verdicts == []
    assert "no sign of collapse" in str(report)


def test_doctor_catches_a_broken_label_mapping_and_bad_shapes():
    y = [0, 1]
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    report = imbalance.diagnose_collapse(logits, y, y, id2label={0: "neg", 1: "pos"},
                                         label2id={"neg": 1, "pos": 0})
    assert report.mapping_round_trips is False and "disagree" in str(report)
    with pytest.raises(ValueError, match="shape"):
        imbalance.diagnose_collapse(torch.zeros(4), [0, 1, 0, 1], y)
    with pytest.raises(ValueError, match="labels"):
        imbalance.diagnose_collapse(logits, [0, 1, 1], y)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        imbalance.diagnose_collapse(logits, [0, 2], y)


def test_doctor_sees_a_good_ranking_behind_a_collapse():
    y = np.array([0, 1] * 50)
    margin = torch.as_tensor(y, dtype=torch.float32) - 3.0  # always class 0, yet ordered by y
    logits = torch.stack([torch.zeros(100), margin], 1)
    report = imbalance.diagnose_collapse(logits, y, [0] * 95 + [1] * 5)
    assert report.collapsed and report.auc == 1.0 and "rank the classes" in str(report)


def _stub(labels, seed):
    raise NotImplementedError


def _resample_whole_class(labels, seed):  # the source text's way: each class drawn anew
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    out = []
    for c in (0, 1, 2):
        out.append(rng.choice(np.flatnonzero(labels == c), size=300, replace=True))
    return np.concatenate(out)


def _copies_the_first(labels, seed):
    labels = np.asarray(labels)
    extra = [np.repeat(np.flatnonzero(labels == c)[:1], 300 - (labels == c).sum()) for c in (1, 2)]
    return np.concatenate([np.arange(len(labels)), *extra])


def _unseeded(labels, seed):
    return imbalance.oversample_minority(labels, int(np.random.randint(1 << 30)))


def _not_balanced(labels, seed):
    return np.arange(len(labels))


@pytest.mark.parametrize("wrong, words", [(_stub, "not implemented"), (_resample_whole_class, "missing"),
                                          (_copies_the_first, "seed gave the same"), (_unseeded, "same seed"),
                                          (_not_balanced, "class counts"), (lambda labels, seed: "x", "1-d array")])
def test_oversample_check_passes_reference_and_names_mistakes(wrong, words):
    from bert_workbook.exercises import ex05

    assert ex05.check_oversample(imbalance.oversample_minority).passed
    result = ex05.check_oversample(wrong)
    assert not result.passed and words in str(result), str(result)


def test_balanced_class_weights_agree_with_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = [0] * 7 + [1] * 2 + [2]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels))
    assert np.allclose(imbalance.balanced_class_weights(labels, 3).numpy(), expected)
