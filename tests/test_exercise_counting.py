"""Notebooks 08 and 09: the parameter count of ALBERT's factorized embeddings and the plan of a
data-parallel run. Each usual mistake, written out here on its own, gets its own name (and no
other mistake's); right answers of other kinds pass."""

import math

import numpy as np
import pytest
import torch

from bert_workbook.exercises import ex08, ex09

# --- ALBERT's factorized embeddings -----------------------------------------------------------------

FACTORIZED_MISTAKES = {
    (lambda v, e, h: v * h): "BERT's unfactorized table",
    (lambda v, e, h: v * e): "the projection from embedding_size to hidden_size is missing",
    (lambda v, e, h: v * e + e * h): "the projection's bias (hidden_size numbers) is missing",
    (lambda v, e, h: v * e + h * h + h): "the projection has hidden_size x hidden_size weights",
    (lambda v, e, h: v * e + e * h + e): "the bias was counted with embedding_size numbers",
    (lambda v, e, h: (v * e, e * h + h)): "expected a whole number",
}


@pytest.mark.parametrize("mistake", FACTORIZED_MISTAKES, ids=list(FACTORIZED_MISTAKES.values()))
def test_factorized_count_names_each_mistake_and_only_it(mistake):
    result = ex08.factorized_embeddings.check(mistake)
    assert not result.passed
    assert FACTORIZED_MISTAKES[mistake] in result.message, result
    others = [words for other, words in FACTORIZED_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


@pytest.mark.parametrize("answer", [ex08.factorized_embeddings.reference,
                                    lambda v, e, h: np.int64(e * (v + h) + h),
                                    lambda v, e, h: torch.tensor(float(v * e + e * h + h))])
def test_factorized_count_passes_right_answers_of_other_kinds(answer):
    result = ex08.factorized_embeddings.check(answer)
    assert result.passed, result


# --- the plan of a data-parallel run ----------------------------------------------------------------


def _plan(global_batch, per_epoch, epochs):
    return global_batch, per_epoch, per_epoch * epochs, int(0.1 * per_epoch * epochs)


def without_processes(examples, per_device, processes, accumulation, epochs):
    return _plan(per_device * accumulation, math.ceil(examples / (per_device * accumulation)), epochs)


def without_accumulation(examples, per_device, processes, accumulation, epochs):
    return _plan(per_device * processes, math.ceil(examples / (per_device * processes)), epochs)


def rounded_down(examples, per_device, processes, accumulation, epochs):
    return _plan(per_device * processes * accumulation, examples // (per_device * processes * accumulation), epochs)


def counted_in_forward_passes(examples, per_device, processes, accumulation, epochs):
    passes = math.ceil(examples / (per_device * processes))
    return _plan(per_device * processes * accumulation, passes, epochs)


def three_numbers(examples, per_device, processes, accumulation, epochs):
    return without_processes(examples, per_device, processes, accumulation, epochs)[:3]


PLAN_MISTAKES = {
    without_processes: "the global batch leaves out the processes",
    without_accumulation: "the global batch leaves out gradient accumulation",
    rounded_down: "updates per epoch were rounded down",
    counted_in_forward_passes: "counted in one process's forward passes",
    three_numbers: "expected four whole numbers",
}


@pytest.mark.parametrize("mistake", PLAN_MISTAKES, ids=lambda f: f.__name__)
def test_plan_names_each_mistake_and_only_it(mistake):
    result = ex09.plan_run.check(mistake)
    assert not result.passed
    assert PLAN_MISTAKES[mistake] in result.message, result
    others = [words for other, words in PLAN_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def as_array(examples, per_device, processes, accumulation, epochs):
    global_batch = per_device * processes * accumulation
    per_epoch = -(-examples // global_batch)  # ceiling division in integers
    return np.array([global_batch, per_epoch, per_epoch * epochs, per_epoch * epochs // 10])


def as_list_of_floats(examples, per_device, processes, accumulation, epochs):
    global_batch = float(per_device * processes * accumulation)
    per_epoch = float(math.ceil(examples / global_batch))
    return [global_batch, per_epoch, per_epoch * epochs, float(math.floor(0.1 * per_epoch * epochs))]


@pytest.mark.parametrize("answer", [ex09.plan_run.reference, as_array, as_list_of_floats])
def test_plan_passes_right_answers_of_other_kinds(answer):
    result = ex09.plan_run.check(answer)
    assert result.passed, result
