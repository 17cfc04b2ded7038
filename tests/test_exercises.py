"""Every exercise module: the reference passes its check, and a stub, None and nonsense answers
get a failing verdict (never an exception); hint() and solution() work for each."""

import pytest

from bert_workbook import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09
from bert_workbook.exercise import Exercise

EXERCISES = {name: value for module in (ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09)
             for name, value in vars(module).items() if isinstance(value, Exercise)}


def test_every_notebook_module_has_its_exercises():
    assert set(EXERCISES) == {"wordpiece", "first_subword_mask", "mask_tokens", "embeddings", "attention", "mlm_loss",
                              "cls_classifier", "training_step", "oversample", "macro_f1", "focal_loss", "align_labels",
                              "factorized_embeddings", "plan_run"}


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_the_reference_passes(name):
    exercise = EXERCISES[name]
    result = exercise.check(exercise.reference)
    assert result.passed, result


def stub(*args, **kwargs):
    raise NotImplementedError


def raises(*args, **kwargs):
    raise ValueError("a learner's bug")


class Broken:  # a class whose construction fails, for the classifier exercise
    def __init__(self, *args, **kwargs):
        raise NotImplementedError


@pytest.mark.parametrize("name", sorted(EXERCISES))
@pytest.mark.parametrize("answer", [stub, None, raises, lambda *a, **k: None, lambda *a, **k: "nonsense",
                                    lambda *a, **k: float("nan"), lambda *a, **k: [], 42, Broken],
                         ids=["stub", "None", "raises", "returns None", "returns a string", "returns NaN",
                              "returns []", "not a function", "broken class"])
def test_wrong_answers_get_a_verdict_never_an_exception(name, answer):
    result = EXERCISES[name].check(answer)
    assert result.passed is False
    assert result.message and "check itself failed" not in result.message, result


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_hints_and_solution(name, capsys):
    exercise = EXERCISES[name]
    for _ in range(len(exercise.hints) + 1):
        exercise.hint()
    out = capsys.readouterr().out
    assert f"Hint {len(exercise.hints)} of {len(exercise.hints)}" in out
    exercise.solution()
    assert exercise.reference.__name__ in capsys.readouterr().out


def test_macro_f1_reference_agrees_with_scikit_learn_and_names_the_slips():
    import numpy as np
    import torch
    from sklearn.metrics import f1_score

    from bert_workbook import ex05

    rng = np.random.default_rng(0)
    for _ in range(20):
        k = int(rng.integers(2, 6))
        y_true, y_pred = rng.integers(0, k, 300), rng.integers(0, k, 300)
        y_pred[rng.random(300) < 0.5] = 0  # often one class dominates
        confusion = np.zeros((k, k), dtype=int)
        np.add.at(confusion, (y_true, y_pred), 1)
        expected = f1_score(y_true, y_pred, average="macro", labels=list(range(k)), zero_division=0)
        assert abs(ex05.macro_f1_from_confusion(confusion) - expected) < 1e-12
    def per_class_f1(m):
        tp = np.diag(m)
        return 2 * tp / (m.sum(0) + m.sum(1))  # 2 TP / (2 TP + FP + FN); no class here is empty

    slips = {
        "accuracy": lambda m: np.trace(m) / m.sum(),
        "weighted by support": lambda m: float((per_class_f1(m) * m.sum(1)).sum() / m.sum()),
        "the last class only": lambda m: float(per_class_f1(m)[-1]),
    }
    for name, slip in slips.items():
        result = ex05.macro_f1.check(slip)
        assert not result.passed and "that is the" in result.message, (name, result)

    def nan_for_unpredicted(m):
        tp = np.diag(m)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision, recall = tp / m.sum(0), tp / m.sum(1)
        return float((2 * precision * recall / (precision + recall)).mean())

    assert "NaN" in ex05.macro_f1.check(nan_for_unpredicted).message
    for kind in (np.float32, np.float64, torch.tensor, lambda x: np.array(x)):  # any right number passes
        assert ex05.macro_f1.check(lambda m, kind=kind: kind(ex05.macro_f1_from_confusion(m))).passed


def test_masked_lm_loss_check_names_its_slips():
    import torch

    from bert_workbook import ex02

    for name in ex02._mlm_loss_mistakes(*ex02._mlm_loss_cases()[0][1:]):
        def slip(logits, labels, name=name):
            return ex02._mlm_loss_mistakes(logits, labels)[name]
        result = ex02.mlm_loss.check(slip)
        assert not result.passed and name in result.message, result
    no_gradient = ex02.mlm_loss.check(lambda z, y: torch.tensor(float(ex02.masked_lm_loss_from_logits(z, y).detach())))
    assert not no_gradient.passed and "gradient" in no_gradient.message
    unmasked = ex02.mlm_loss.check(lambda z, y: torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]),
                                                                                  y.reshape(-1).clamp_min(0)))
    assert not unmasked.passed


def test_embeddings_check_names_each_slip_of_its_catalogue():
    from bert_workbook import ex03

    model, ids, types = ex03._embedding_cases()[0][1:]
    for name in ex03._embedding_mistakes(model, ids, types):
        def slip(model, ids, types, name=name):
            import torch
            with torch.no_grad():
                return ex03._embedding_mistakes(model, ids, types)[name]
        result = ex03.embeddings.check(slip)
        assert not result.passed and name in result.message, (name, result)


def test_alignment_check_names_the_shift_past_cls():
    from bert_workbook import ex07

    def after_cls(labels, word_ids, **kwargs):
        return [-100] + [labels[i] if i < len(labels) else -100 for i in range(len(word_ids) - 1)]

    result = ex07.align_labels.check(after_cls)
    assert not result.passed and "after [CLS]" in result.message, result


def test_hints_name_the_module_a_learner_types():
    from bert_workbook import ex02, ex03, ex05

    for module, name in [(ex02, "mlm_loss"), (ex03, "attention"), (ex05, "macro_f1")]:
        exercise = getattr(module, name)
        result = exercise.check(lambda *args, **kwargs: args[0] * 0 + 1)  # a wrong answer of the right type
        assert f"{module.__name__.rsplit('.', 1)[1]}.{name}.hint()" in str(result), result


def test_plan_check_names_each_slip():
    for name in ex09._plan_mistakes(*ex09.PLAN_CASES[0]):
        def slip(*case, name=name):
            return ex09._plan_mistakes(*case)[name]
        result = ex09.plan_run.check(slip)
        assert not result.passed and name in result.message, (name, result)
    import numpy as np
    import torch

    from bert_workbook import finetune
    for convert in (list, np.array, torch.tensor):  # any sequence of four whole numbers
        assert ex09.plan_run.check(lambda *a, convert=convert: convert(finetune.plan_run(*a))).passed
