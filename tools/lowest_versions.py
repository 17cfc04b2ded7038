"""Pip constraints that pin every dependency of pyproject.toml to the lowest version it allows.

``make test-lowest`` installs the project with these constraints in a separate environment and
runs the unit tests and two fast notebooks there: the floors in pyproject.toml are then a
measured promise, not a guess. Torch stays at the build the Makefile asks for (its floor is the
one range this project cannot test here: older CPU wheels are not on these machines).

    python tools/lowest_versions.py > build/lowest.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Extras installed with the project in the lowest-versions environment.
EXTRAS = ("test",)
# Not pinned to a floor: torch comes from the Makefile's TORCH_SPEC; ruff's rules change between
# releases (the lint runs with the newest); the lab extra is not needed to run the tests.
UNPINNED = {"torch", "ruff"}

_SPEC = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def floor(requirement: str) -> tuple[str, str | None]:
    """``(name, lowest version)`` of a requirement string: the ``>=`` or ``==`` bound, or None
    when it has neither (nothing to pin)."""
    match = _SPEC.match(requirement.split(";")[0])
    if not match:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    name, spec = match.group(1), match.group(2)
    bounds = {op: version.strip() for op, version in re.findall(r"(>=|==)\s*([^,\s]+)", spec)}
    return name.lower(), bounds.get("==") or bounds.get(">=")


def lowest_constraints(pyproject: dict, extras=EXTRAS) -> list[str]:
    """``name==version`` lines for every dependency (and those of ``extras``) that has a floor."""
    project = pyproject["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins = {}
    for requirement in requirements:
        name, version = floor(requirement)
        if version and name not in UNPINNED:
            pins[name] = version
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def main() -> int:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    print("\n".join(lowest_constraints(pyproject)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
