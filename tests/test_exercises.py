"""Every exercise module: the reference passes its check; a stub, None, nonsense and plausible
answers of the wrong kind get a failing verdict that says what is wrong (never an exception, never
"the check itself failed"); a failing verdict points to hint() and never prints the recipe;
hint() goes one step further each call; the shared machinery (copies of the check's data,
numbers from any answer, naming a mistake only where a case tells it apart)."""

import numpy as np
import pytest
import torch

from bert_workbook.exercises import core, ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09

MODULES = (ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09)
EXERCISES = {f"{module.__name__.rsplit('.', 1)[1]}.{name}": value for module in MODULES
             for name, value in vars(module).items() if isinstance(value, core.Exercise)}


def test_every_notebook_module_has_its_exercises():
    assert set(EXERCISES) == {
        "ex01.wordpiece", "ex01.first_subword_mask", "ex02.mask_tokens", "ex02.mlm_loss", "ex03.embeddings",
        "ex03.attention", "ex04.cls_classifier", "ex04.training_step", "ex05.oversample", "ex05.macro_f1",
        "ex06.focal_loss", "ex07.align_labels", "ex08.factorized_embeddings", "ex09.plan_run"}


@pytest.mark.parametrize("handle", sorted(EXERCISES))
def test_the_reference_passes(handle):
    exercise = EXERCISES[handle]
    result = exercise.check(exercise.reference)
    assert result.passed, result


def stub(*args, **kwargs):
    raise NotImplementedError


def raises(*args, **kwargs):
    raise ValueError("a learner's bug")


class Broken:  # a class whose construction fails, for the classifier exercise
    def __init__(self, *args, **kwargs):
        raise NotImplementedError


ODD_ANSWERS = {
    "stub": (stub, "not implemented"), "None": (None, "expected a function"), "raises": (raises, "ValueError"),
    "returns None": (lambda *a, **k: None, "None"), "broken class": (Broken, "not implemented"),
    "not a function": (42, "int"),
}


@pytest.mark.parametrize("handle", sorted(EXERCISES))
@pytest.mark.parametrize("kind", sorted(ODD_ANSWERS))
def test_odd_answers_get_a_verdict_that_says_what_is_wrong(handle, kind):
    answer, says = ODD_ANSWERS[kind]
    result = EXERCISES[handle].check(answer)
    assert result.passed is False
    assert "check itself failed" not in result.message, result
    if (handle, kind) == ("ex04.training_step", "returns None"):  # a step that does nothing at all
        says = "the weights never change"
    if handle != "ex04.cls_classifier" or kind in ("stub", "broken class", "raises"):
        assert says in result.message, result


@pytest.mark.parametrize("handle", sorted(EXERCISES))
@pytest.mark.parametrize("answer", [lambda *a, **k: "nonsense", lambda *a, **k: float("nan"), lambda *a, **k: [],
                                    lambda *a, **k: {"answer": 1}, lambda *a, **k: (x for x in range(3)),
                                    lambda *a, **k: np.zeros((2, 2)), lambda *a, **k: torch.zeros(3, dtype=torch.complex64)],
                         ids=["string", "NaN", "empty list", "dict", "generator", "numpy matrix", "complex tensor"])
def test_nonsense_gets_a_verdict_never_an_exception(handle, answer):
    result = EXERCISES[handle].check(answer)
    assert result.passed is False
    assert result.message and "check itself failed" not in result.message, result


def _converted(function, convert):
    return lambda *args, **kwargs: convert(function(*args, **kwargs))


# Answers of a plausible kind that later cells cannot use: each gets a verdict that names the kind.
PLAUSIBLE_WRONG_KINDS = [
    ("ex02.mask_tokens", _converted(ex02.mask_tokens.reference, lambda t: (t[0].float(), t[1])), "integer token ids"),
    ("ex02.mask_tokens", _converted(ex02.mask_tokens.reference, lambda t: tuple(x.numpy() for x in t)), "torch tensor"),
    ("ex02.mlm_loss", _converted(ex02.masked_lm_loss_from_logits, lambda x: x.item()), "as a tensor (no .item())"),
    ("ex02.mlm_loss", _converted(ex02.masked_lm_loss_from_logits, lambda x: torch.complex(x, x * 0)), "one real number"),
    ("ex03.attention", _converted(ex03.attention.reference, lambda x: x.tolist()), "returned list"),
    ("ex03.attention", _converted(ex03.attention.reference, lambda x: torch.complex(x, x * 0)), "complex64"),
    ("ex03.embeddings", _converted(ex03.embeddings.reference, lambda x: x.detach().numpy()), "torch tensor"),
    ("ex03.embeddings", _converted(ex03.embeddings.reference, lambda x: x.long()), "floating-point"),
    ("ex04.training_step", _converted(ex04.training_step.reference, lambda x: [x]), "returned list"),
    ("ex04.training_step", _converted(ex04.training_step.reference, lambda x: np.float32(x)), "Python float"),
    ("ex05.oversample", _converted(ex05.oversample.reference, lambda x: x.astype(float)), "integer indices"),
    ("ex05.oversample", _converted(ex05.oversample.reference, lambda x: x[None]), "1-d"),
    ("ex05.macro_f1", _converted(ex05.macro_f1_from_confusion, str), "got str"),
    ("ex05.macro_f1", _converted(ex05.macro_f1_from_confusion, lambda x: [x]), "got list"),
    ("ex06.focal_loss", _converted(ex06.focal_loss.reference, lambda x: x.reshape(1)), "not a scalar tensor"),
    ("ex06.focal_loss", _converted(ex06.focal_loss.reference, lambda x: x.long()), "int64"),
    ("ex07.align_labels", _converted(ex07.align_labels.reference, lambda x: [str(v) for v in x]), "list of ints"),
    ("ex07.align_labels", _converted(ex07.align_labels.reference, lambda x: {"labels": x}), "got dict"),
    ("ex08.factorized_embeddings", _converted(ex08.factorized_embeddings.reference, str), "whole number"),
    ("ex08.factorized_embeddings", _converted(ex08.factorized_embeddings.reference, lambda x: 10 ** 400), "expected"),
    ("ex09.plan_run", _converted(ex09.plan_run.reference, lambda x: x[:3]), "four whole numbers"),
    ("ex09.plan_run", _converted(ex09.plan_run.reference, lambda x: {"plan": x}), "four whole numbers"),
]


@pytest.mark.parametrize("handle, answer, says", PLAUSIBLE_WRONG_KINDS,
                         ids=[f"{h}-{i}" for i, (h, _, _) in enumerate(PLAUSIBLE_WRONG_KINDS)])
def test_plausible_answers_of_the_wrong_kind_are_named(handle, answer, says):
    result = EXERCISES[handle].check(answer)
    assert not result.passed and "check itself failed" not in result.message
    assert says in result.message, result


@pytest.mark.parametrize("handle", sorted(EXERCISES))
def test_a_failing_verdict_points_to_hint_and_never_prints_the_recipe(handle):
    exercise = EXERCISES[handle]
    results = [exercise.check(answer) for answer in (raises, lambda *a, **k: "nonsense", lambda *a, **k: [1, 2])]
    for result in results:
        assert not result.passed
        assert result.hint in ("", core.nudge(handle)), result
        for hint in exercise.hints[1:]:  # the later, more telling hints stay behind hint()
            assert hint not in str(result), result
    assert any(f"call {handle}.hint()" in str(result) for result in results), results


def test_hints_go_one_step_further_each_call(capsys):
    exercise = core.Exercise("E", lambda answer: core.CheckResult("E", True, "ok"), ("first", "second"), stub)
    for _ in range(3):
        exercise.hint()
    out = capsys.readouterr().out
    assert "Hint 1 of 2 (E): first" in out and out.count("Hint 2 of 2 (E): second") == 2


def test_without_solution_code_solution_shows_the_reference(capsys):
    core.Exercise("E", lambda answer: None, (), ex05.macro_f1_from_confusion).solution()
    assert "def macro_f1_from_confusion" in capsys.readouterr().out


# --- the shared machinery ---------------------------------------------------------------------------


def test_call_or_verdict_hands_copies_and_names_an_argument_changed_in_place():
    ids, array, labels = torch.arange(6), np.arange(4), [1, 2, 3]

    def changes_labels(ids, array, labels):
        labels.append(4)
        return 1

    def changes_nothing_it_was_given(ids, array, labels):
        ids, array = ids.clone(), array.copy()
        ids[0], array[0] = 99, 99
        return ids

    def changes_ids(input_ids, array, labels):
        input_ids += 1
        return input_ids

    out, failed = core.call_or_verdict("E", changes_labels, ids, array, labels)
    assert out is None and "changed `labels` in place" in failed.message
    out, failed = core.call_or_verdict("E", changes_ids, ids, array, labels)
    assert "changed `input_ids` in place" in failed.message
    out, failed = core.call_or_verdict("E", changes_nothing_it_was_given, ids, array, labels)
    assert failed is None and out[0] == 99
    assert ids.tolist() == list(range(6)) and array.tolist() == [0, 1, 2, 3] and labels == [1, 2, 3]


def test_call_or_verdict_keeps_a_tensor_that_tracks_gradients():
    leaf = torch.ones(3, requires_grad=True)
    out, failed = core.call_or_verdict("E", lambda x: (x * 2).sum(), leaf)
    assert failed is None
    (grad,) = torch.autograd.grad(out, leaf)
    assert grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("value, number", [(3, 3.0), (2.5, 2.5), (np.float32(0.5), 0.5), (torch.tensor(4.0), 4.0),
                                           (np.array(7), 7.0), ("3", None), (True, None), (1 + 2j, None),
                                           ([1.0], None), (np.zeros(2), None), (10 ** 400, None)])
def test_as_number_reads_one_real_number_of_any_kind(value, number):
    assert core.as_number(value) == number


@pytest.mark.parametrize("value, whole", [(3, 3), (3.0, 3), (np.int64(2 ** 60 + 1), 2 ** 60 + 1), (torch.tensor(5), 5),
                                          (3.5, None), (float("inf"), None), ("3", None), (False, None)])
def test_as_int_reads_whole_numbers_exactly(value, whole):
    assert core.as_int(value) == whole


def test_named_mistake_names_only_a_mistake_the_case_tells_apart():
    mistakes = {"doubled": 4, "squared": 4, "plus one": 3}
    same = int.__eq__
    assert core.named_mistake(3, mistakes, same) == "plus one"
    assert core.named_mistake(4, mistakes, same) is None  # two mistakes give 4 here: name neither
    assert core.named_mistake(5, mistakes, same) is None
    assert core.named_mistake("x", {"a": np.zeros(2)}, lambda a, b: bool((a == b).all())) is None


def test_a_broken_checker_still_returns_a_verdict():
    result = core.Exercise("E", lambda answer: 1 / 0, (), stub).check(None)
    assert not result.passed and "check itself failed" in result.message
