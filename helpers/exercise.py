"""What every exercise offers a learner: ``check(answer)``, ``hint()`` and ``solution()``.

An :class:`Exercise` bundles a check (a function that returns a :class:`~bert_workbook.checks.CheckResult`
for any answer and never raises), hints that go from a nudge to the recipe, one at a time, and
the reference implementation whose source ``solution()`` shows. Each notebook's exercises live
in their own module (``bert_workbook.ex03`` for notebook 03), built on this one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bert_workbook.checks import CheckResult


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
