"""What every exercise offers a learner: ``check(answer)``, ``hint()`` and ``solution()``, and the
machinery the checks share (the verdict type, calling a learner's function safely, reading a
number or a list from any answer).

An :class:`Exercise` bundles a check (a function that returns a :class:`CheckResult` for any
answer and never raises), hints that go from a nudge to the recipe, one at a time, and
the reference implementation whose source ``solution()`` shows. Each notebook's exercises live
in their own module (``bert_workbook.ex03`` for notebook 03), built on this one.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import dataclass as _dataclass

HELD_OUT_SEED = 2024  # seeds the checks' own data: inputs the notebooks never show


@_dataclass(frozen=True)
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


def call_or_verdict(exercise: str, fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)``; return ``(output, None)`` or ``(None, failing CheckResult)``."""
    if not callable(fn):
        return None, CheckResult(exercise, False, f"expected a function, got {type(fn).__name__}.",
                                 "define the function in the cell above, run that cell, then pass it here.")
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, CheckResult(
            exercise, False, "not implemented yet.", "replace the `raise NotImplementedError`."
        )
    except Exception as error:  # a learner's bug: report it, do not crash the notebook
        return None, CheckResult(
            exercise, False, f"your function raised {type(error).__name__}: {error}"
        )


def as_int(value):
    """``value`` as an int when it is a whole number of any kind (int, numpy or torch scalar,
    0-d array, a float like 3.0), else None: never raises."""
    try:
        if isinstance(value, bool) or getattr(value, "ndim", 0) != 0:
            return None
        number = value.item() if hasattr(value, "item") else value
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return None
        return int(number) if math.isfinite(number) and number == int(number) else None
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
    """A failing verdict if ``out`` is not a tensor shaped like ``expected``, else None."""
    import torch

    if isinstance(out, torch.Tensor) and out.shape == expected.shape:
        return None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    return CheckResult(exercise, False, f"{what} of shape {tuple(expected.shape)}, got {shape}.", hint)


@dataclass
class Exercise:
    """One exercise: its ``name``, its ``checker``, its ``hints`` (gentlest first) and its
    ``reference`` implementation."""

    name: str
    checker: Callable[[object], CheckResult]
    hints: Sequence[str]
    reference: Callable
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
        """Print the reference implementation's source."""
        print(f"Solution ({self.name}), from {self.reference.__module__}:\n")
        print(inspect.getsource(self.reference))
