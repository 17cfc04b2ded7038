"""Printing that two computations agree, in words that do not depend on the machine.

Two float32 computations that are mathematically equal differ by rounding, and by how much
depends on the CPU's vector width, the thread count and the library's kernels: 3.0e-07 on one
machine, 1.2e-07 on another. A notebook whose lesson is "these are equal" prints a bound instead
(``equal within 1e-05: yes, largest difference below 1e-06``), which reads the same wherever the
difference stays below the bound, and says NO, with the figure, where it does not.
"""

from __future__ import annotations

import math


def _number(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a number (or a one-element tensor or array), got {value!r}") from error
    if math.isnan(number) or number < 0:
        raise ValueError(f"{name} must be a non-negative number, got {number!r}")
    return number


def bound(difference, below: float) -> str:
    """``"below 1e-06"`` when ``difference < below``, else the figure itself (``"2.3e-06"``): a
    bound where the computations agree, a number where they do not."""
    difference, below = _number(difference, "difference"), _number(below, "below")
    if below <= 0:
        raise ValueError(f"below must be positive, got {below!r}")
    return f"below {below:g}" if difference < below else f"{difference:.1e}"


def difference_bound(difference, below: float) -> str:
    """``"largest difference below 1e-06"``, or ``"largest difference 2.3e-06"`` (see ``bound``)."""
    return f"largest difference {bound(difference, below)}"


def agreement(difference, tolerance: float, below: float | None = None) -> str:
    """``"equal within 1e-05: yes, largest difference below 1e-06"``: whether ``difference`` (the
    largest absolute difference of two results) is under ``tolerance``, then the bound ``below``
    that it stays under on any machine (default: the tolerance, and then no bound is repeated:
    ``"equal within 1e-05: yes"``)."""
    difference, tolerance = _number(difference, "difference"), _number(tolerance, "tolerance")
    below = tolerance if below is None else _number(below, "below")
    if not 0 < below <= tolerance:
        raise ValueError(f"need 0 < below <= tolerance, got below={below!r}, tolerance={tolerance!r}")
    if difference < tolerance:
        return f"equal within {tolerance:g}: yes" + ("" if below == tolerance else f", {difference_bound(difference, below)}")
    return f"equal within {tolerance:g}: NO, largest difference {difference:.1e}"
