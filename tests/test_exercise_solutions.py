"""solution() shows a short hand-written solution for every exercise: the few lines a learner
writes in the notebook's cell, with the stub's signature. Executed with the imports the
notebooks have, it passes the exercise's own check."""

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bert_workbook.exercises import core, ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09

MODULES = (ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09)
EXERCISES = {f"{module.__name__.rsplit('.', 1)[1]}.{name}": value for module in MODULES
             for name, value in vars(module).items() if isinstance(value, core.Exercise)}
SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


def shown_solution(exercise, capsys) -> str:
    """The code solution() prints (everything after its one-line header)."""
    exercise.solution()
    out = capsys.readouterr().out
    header, _, code = out.partition("\n\n")
    assert header == f"Solution ({exercise.name}):"
    return code


def defined_name(code: str) -> str:
    (definition,) = ast.parse(code).body  # one function or one class, nothing else
    assert isinstance(definition, (ast.FunctionDef, ast.ClassDef))
    return definition.name


@pytest.mark.parametrize("handle", sorted(EXERCISES))
def test_the_solution_shown_passes_its_own_check(handle, capsys):
    exercise = EXERCISES[handle]
    code = shown_solution(exercise, capsys)
    namespace = {"np": np, "torch": torch, "nn": nn, "F": F, "math": math}
    exec(compile(code, f"<{handle}.solution()>", "exec"), namespace)
    result = exercise.check(namespace[defined_name(code)])
    assert result.passed, result


@pytest.mark.parametrize("handle", sorted(EXERCISES))
def test_the_solution_is_short_and_is_not_the_library_source(handle, capsys):
    exercise = EXERCISES[handle]
    code = shown_solution(exercise, capsys)
    lines = [line for line in code.splitlines() if line.strip()]
    assert 3 <= len(lines) <= 25, f"{handle}: {len(lines)} lines"
    assert "raise TypeError" not in code and "check_" not in code  # no library input checks
    assert code.strip() == exercise.solution_code.strip()


def notebook_signatures() -> dict:
    """The signature of every exercise stub in solutions/, by the name it defines: for a class,
    the signatures of its methods."""
    found = {}
    for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and "### BEGIN SOLUTION" in source:
                (definition,) = ast.parse(source).body
                found[definition.name] = signature(definition)
    return found


def signature(definition):
    if isinstance(definition, ast.ClassDef):
        return {node.name: ast.unparse(node.args) for node in definition.body if isinstance(node, ast.FunctionDef)}
    return ast.unparse(definition.args)


def test_each_solution_has_the_signature_of_the_notebook_stub():
    stubs = notebook_signatures()
    for handle, exercise in EXERCISES.items():
        (definition,) = ast.parse(exercise.solution_code).body
        assert definition.name in stubs, handle
        assert signature(definition) == stubs[definition.name], handle
