"""Every exercise module: the reference passes its check, and a stub, None and nonsense answers
get a failing verdict (never an exception); hint() and solution() work for each."""

import pytest

from bert_workbook import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08
from bert_workbook.exercise import Exercise

EXERCISES = {name: value for module in (ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08)
             for name, value in vars(module).items() if isinstance(value, Exercise)}


def test_every_notebook_module_has_its_exercises():
    assert set(EXERCISES) == {"wordpiece", "first_subword_mask", "mask_tokens", "embeddings", "attention",
                              "cls_classifier", "training_step", "oversample", "focal_loss", "align_labels",
                              "factorized_embeddings"}


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
