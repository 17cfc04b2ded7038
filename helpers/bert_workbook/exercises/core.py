"""What every exercise offers a learner: ``check(answer)``, ``hint()`` and ``solution()``, and the
machinery the checks share (the verdict type, calling a learner's function on copies of the
check's data, reading a number or a list from any answer, naming a mistake only when a case
tells it apart from the others).

An :class:`Exercise` bundles a check (a function that returns a :class:`CheckResult` for any
answer and never raises), hints that go from a nudge to the recipe, one at a time, and a short
hand-written solution: the few lines a learner would write in the notebook's cell. A failing
verdict names the mistake and points to ``hint()``; it never prints the recipe. Each notebook's
exercises live in their own module (``bert_workbook.exercises.ex03`` for notebook 03).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

HELD_OUT_SEED = 2024  # seeds the checks' own data: inputs the notebooks never show


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one exercise check."""

    exercise: str
    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = "PASSED" if self.passed else "NOT YET"
        text = f"[{mark}] {self.exercise}: {self.message}"
        if self.hint and not self.passed:
            text += f"\nHint: {self.hint}"
        return text

    __repr__ = __str__

    def choose(self, mine, reference):
        """``(mine, note)`` when the check passed, else ``(reference, note)``: a safe fallback."""
        if self.passed:
            return mine, f"Using your implementation for {self.exercise}."
        return reference, (
            f"Using the reference implementation for {self.exercise} "
            f"({reference.__module__}.{reference.__qualname__}): your version has not passed its "
            "check yet, so the cells below use the reference and still run."
        )


def nudge(handle: str) -> str:
    """The hint line of a failing verdict: where the graded hints are, never the recipe."""
    return f"call {handle}.hint() for a nudge, again for more."


def call_or_verdict(exercise: str, fn, *args, **kwargs):
    """Run ``fn`` on copies of ``args`` and ``kwargs``; return ``(output, None)`` or ``(None,
    failing CheckResult)``: for something that is not a function, a stub, an exception, a
    ``None`` returned, or an argument changed in place (the caller's data must stay intact)."""
    if not callable(fn):
        return None, CheckResult(exercise, False, f"expected a function, got {type(fn).__name__}: define "
                                 "it in the cell above, run that cell, then pass it here.")
    given = [_copy(value) for value in args]
    given_kwargs = {key: _copy(value) for key, value in kwargs.items()}
    try:
        out = fn(*given, **given_kwargs)
    except NotImplementedError:
        return None, CheckResult(exercise, False, "not implemented yet: replace the `raise NotImplementedError`.")
    except Exception as error:  # a learner's bug: report it, do not crash the notebook
        return None, CheckResult(exercise, False, f"your function raised {type(error).__name__}: {error}")
    names = _parameter_names(fn, len(args)) + list(kwargs)
    for name, before, after in zip(names, [*args, *kwargs.values()], [*given, *given_kwargs.values()]):
        if not _same(before, after):
            return None, CheckResult(exercise, False, f"your function changed `{name}` in place, but the "
                                     f"caller still needs it as it was: work on a copy ({name}.clone() "
                                     "for a tensor, .copy() for an array, a list or a dict).")
    if out is None:
        return None, CheckResult(exercise, False, "your function returned None: did you forget the `return`?")
    return out, None


def _copy(value):
    """A copy a learner's function may change without touching the check's own data: tensors,
    arrays, and lists, tuples and dicts of them. A tensor that tracks gradients is passed as it
    is (autograd forbids changing it in place), and so is anything else (a model, a generator)."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value if value.requires_grad else value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(_copy(item) for item in value)
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value


def _same(before, after) -> bool:
    """Whether ``after`` (the copy a learner's function got) still equals ``before``."""
    import numpy as np
    import torch

    if before is after:
        return True
    if isinstance(before, torch.Tensor):
        return (isinstance(after, torch.Tensor) and after.shape == before.shape
                and after.dtype == before.dtype and torch.equal(after, before))
    if isinstance(before, np.ndarray):
        return (isinstance(after, np.ndarray) and after.shape == before.shape
                and after.dtype == before.dtype and np.array_equal(after, before))
    if isinstance(before, (list, tuple)):
        return (type(after) is type(before) and len(after) == len(before)
                and all(_same(a, b) for a, b in zip(before, after)))
    if isinstance(before, dict):
        return (isinstance(after, dict) and after.keys() == before.keys()
                and all(_same(before[key], after[key]) for key in before))
    return True


def _parameter_names(fn, count: int) -> list[str]:
    """The names of ``fn``'s first ``count`` positional parameters ("argument 3" when unknown)."""
    try:
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = [p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds]
    except (TypeError, ValueError):  # a builtin without a signature
        names = []
    return [names[i] if i < len(names) else f"argument {i + 1}" for i in range(count)]


def as_int(value):
    """``value`` as an int when it is a whole number of any kind (int, numpy or torch scalar,
    0-d array, a float like 3.0), else None: never raises."""
    number = _scalar(value)
    if isinstance(number, float):
        return int(number) if math.isfinite(number) and number.is_integer() else None
    return number


def as_number(value):
    """``value`` as a float when it is one real number (int, float, numpy or torch scalar, 0-d
    array or tensor), else None: a string, a bool, a complex number or a sequence is not. Never
    raises."""
    number = _scalar(value)
    try:
        return None if number is None else float(number)
    except OverflowError:  # an int too large for a float
        return None


def _scalar(value):
    """``value`` as a Python int or float when it is one real number, else None."""
    try:
        if isinstance(value, bool) or getattr(value, "ndim", 0) != 0:
            return None
        number = value.item() if hasattr(value, "item") else value
        return None if isinstance(number, bool) or not isinstance(number, (int, float)) else number
    except Exception:  # anything that is not a number
        return None


def as_list(value):
    """``value`` (list, tuple, numpy array, tensor) as a list, or None: never raises."""
    try:
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()
        return list(value) if isinstance(value, (list, tuple)) else None
    except Exception:  # anything that is not a sequence
        return None


def shape_verdict(exercise: str, out, expected, what: str, hint: str) -> CheckResult | None:
    """A failing verdict if ``out`` (described as ``what``, e.g. "your logits") is not a tensor of
    real floating-point numbers shaped like ``expected``, else None."""
    import torch

    shape = tuple(expected.shape)
    if not isinstance(out, torch.Tensor):
        return CheckResult(exercise, False, f"{what} must be a torch tensor of shape {shape}, got "
                           f"{type(out).__name__}.", hint)
    if out.shape != expected.shape:
        return CheckResult(exercise, False, f"{what} must be of shape {shape}, got {tuple(out.shape)}.", hint)
    if not out.is_floating_point():
        return CheckResult(exercise, False, f"{what} must hold real floating-point numbers, got {out.dtype}.", hint)
    return None


def named_mistake(got, mistakes: Mapping[str, object], same: Callable[[object, object], bool]) -> str | None:
    """The one mistake of ``mistakes`` (its name -> what it computes) that ``got`` equals by
    ``same``, or None when none does, or several do: a verdict names a mistake only where the
    case tells it apart from the others."""
    matches = []
    for name, value in mistakes.items():
        try:
            if same(got, value):
                matches.append(name)
        except Exception:  # a value of another kind (shape, dtype) is not this mistake
            continue
    return matches[0] if len(matches) == 1 else None


@dataclass
class Exercise:
    """One exercise: its ``name``, its ``checker``, its ``hints`` (gentlest first), its
    ``reference`` implementation (the fallback later cells use) and ``solution_code``, the short
    solution a learner would write in the notebook's cell (the reference's source when empty)."""

    name: str
    checker: Callable[[object], CheckResult]
    hints: Sequence[str]
    reference: Callable
    solution_code: str = ""
    _hints_shown: int = field(default=0, repr=False)

    def check(self, answer) -> CheckResult:
        """The verdict on ``answer``; a failure's text says what was wrong. Never raises."""
        try:
            return self.checker(answer)
        except Exception as error:  # a bug in the check must not stop the learner's notebook
            return CheckResult(self.name, False, f"the check itself failed ({type(error).__name__}: "
                               f"{error}); please report it. Your answer may still be right.")

    def hint(self) -> None:
        """Print the next hint (each call goes one step further; the last one repeats)."""
        if not self.hints:
            print(f"{self.name}: no hints for this one.")
            return
        index = min(self._hints_shown, len(self.hints) - 1)
        self._hints_shown += 1
        print(f"Hint {index + 1} of {len(self.hints)} ({self.name}): {self.hints[index]}")

    def solution(self) -> None:
        """Print the solution: the few lines a learner would write in the notebook's cell."""
        print(f"Solution ({self.name}):\n")
        print(self.solution_code.strip("\n") if self.solution_code else inspect.getsource(self.reference))
