"""What a change of environment does to the stored outputs: each checked cell compared, in words.

    python tools/drift.py compare solutions build/latest        # prints the report (markdown)
    python tools/drift.py compare solutions build/latest -o build/latest/REPORT.md

``make test-latest`` executes every solution notebook in a separate environment with the newest
releases the ranges allow, into ``build/latest/``, then runs this. Each code cell whose outputs
strict nbval would compare (``checked``: not tagged ``nbval-ignore-output``/``nbval-skip`` and no
``# NBVAL_IGNORE_OUTPUT``/``# NBVAL_SKIP`` comment) is put in one of four classes:

* **identical**: the same text outputs;
* **digits only**: the same text once every number is replaced by ``#``, so only figures moved
  (a float's last digit, or a measured value);
* **text changed**: words differ, so a printed verdict or conclusion may have changed; the report
  quotes the first line that differs;
* **error**: the cell raised, or the notebook stopped before it.

A notebook is summarised by its worst class. This is how an upgrade is judged before ``make lock``
moves the versions (README, "The locked environment").

    python tools/drift.py verify solutions/02_*.ipynb    # re-execute in full; exit 1 on a change

``verify`` is the full comparison of the test suite (a stale notebook) and of ``make verify``: each
notebook executed in full (a copy, in its own folder, so relative paths hold) and every checked
cell held to **identical**, except a cell tagged ``digits-vary``, which may differ in its digits
(never in its words). That tag marks the cells whose figures come out of training and so depend,
in their last digits, on the thread count and the CPU's kernels (float sums in another order);
its printed verdicts are still compared word for word.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

CLASSES = ("identical", "digits only", "text changed", "error")
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
_IGNORE_COMMENTS = ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP")
DIGITS_VARY_TAG = "digits-vary"


def checked(cell) -> bool:
    """Whether strict nbval compares this cell's outputs."""
    if cell.cell_type != "code":
        return False
    if _IGNORE_TAGS & set(cell.get("metadata", {}).get("tags", [])):
        return False
    return not any(line.strip().startswith(_IGNORE_COMMENTS) for line in cell.source.splitlines())


def output_text(cell) -> str:
    """A cell's text outputs as nbval reads them: streams and text/plain results (images, HTML and
    widget views left out)."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def has_error(cell) -> bool:
    return any(output.get("output_type") == "error" for output in cell.get("outputs", []))


def without_numbers(text: str) -> str:
    return _NUMBER.sub("#", text)


def first_difference(stored: str, new: str) -> tuple[str, str]:
    """The first line that differs, as (stored, new)."""
    old_lines, new_lines = stored.splitlines(), new.splitlines()
    for index in range(max(len(old_lines), len(new_lines))):
        a = old_lines[index] if index < len(old_lines) else "(no line)"
        b = new_lines[index] if index < len(new_lines) else "(no line)"
        if a != b:
            return a.strip(), b.strip()
    return "", ""


def classify(stored_cell, new_cell) -> str:
    """One of CLASSES for a stored cell and the same cell executed again (None: not reached)."""
    if new_cell is None or has_error(new_cell) or (new_cell.get("execution_count") is None
                                                   and stored_cell.get("execution_count") is not None):
        return "error"
    old, new = output_text(stored_cell), output_text(new_cell)
    if old == new:
        return "identical"
    return "digits only" if without_numbers(old) == without_numbers(new) else "text changed"


def compare_notebook(stored, new, allow_edits: bool = False) -> list[dict]:
    """Per checked cell of ``stored``: its index, class and first differing line. The two must have
    the same code cells; with ``allow_edits``, the same number of them, and a cell whose source
    differs is left out (its outputs were bound to change)."""
    stored_code = [cell for cell in stored.cells if cell.cell_type == "code"]
    new_code = [cell for cell in new.cells if cell.cell_type == "code"] if new is not None else []
    same = [c.source for c in stored_code] == [c.source for c in new_code]
    if new is not None and not same and not (allow_edits and len(stored_code) == len(new_code)):
        raise ValueError("the two notebooks do not have the same code cells")
    rows = []
    for index, cell in enumerate(stored_code):
        if not checked(cell) or (new is not None and new_code[index].source != cell.source):
            continue
        again = new_code[index] if index < len(new_code) else None
        kind = classify(cell, again)
        old_line, new_line = first_difference(output_text(cell), output_text(again) if again is not None else "")
        rows.append({"cell": index, "class": kind, "stored": old_line, "new": new_line,
                     "digits_vary": DIGITS_VARY_TAG in cell.get("metadata", {}).get("tags", [])})
    return rows


def worst(rows: list[dict]) -> str:
    return max((row["class"] for row in rows), key=CLASSES.index, default="identical")


def report(pairs: list[tuple[str, list[dict] | None]], title: str = "Drift report") -> str:
    lines = [f"# {title}", "", "| notebook | checked cells | identical | digits only | text changed | error | verdict |",
             "|---|---|---|---|---|---|---|"]
    for name, rows in pairs:
        if rows is None:
            lines.append(f"| {name} | - | - | - | - | - | not executed |")
            continue
        counts = [sum(row["class"] == kind for row in rows) for kind in CLASSES]
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(map(str, counts)) + f" | {worst(rows)} |")
    for name, rows in pairs:
        changed = [row for row in rows or [] if row["class"] in ("text changed", "error")]
        if changed:
            lines += ["", f"## {name}", ""]
            for row in changed:
                lines.append(f"- code cell {row['cell']} ({row['class']}): `{row['stored'][:150]}` -> "
                             f"`{row['new'][:150]}`")
    return "\n".join(lines) + "\n"


def moved_versions(freeze: str, lock_text: str, environment: dict | None = None) -> list[str]:
    """``name locked -> installed`` for each package of a ``pip list --format=freeze`` whose version
    differs from the lock's on this platform, and those outside the lock marked so."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lock

    want = lock.wanted(lock_text, environment)
    have = {lock.normalize(name): version for name, version in
            (line.split("==", 1) for line in freeze.splitlines() if "==" in line)}
    other, missing, extra = lock.differences(want, have)
    return ([f"{name} {locked} -> {new}" for name, (locked, new) in sorted(other.items())]
            + [f"{name} {want[name]} -> (not installed)" for name in missing]
            + [f"{name} (not in the lock) {have[name]}" for name in extra])


def failures(rows: list[dict]) -> list[dict]:
    """The rows that fail a full re-execution: errors and changed text anywhere, and changed digits
    in a cell not tagged ``digits-vary``."""
    return [row for row in rows if row["class"] in ("error", "text changed")
            or (row["class"] == "digits only" and not row["digits_vary"])]


def execute(path: Path, timeout: int = 1800):
    """``path`` executed in full in its own folder (errors kept as outputs, so every cell is reported)."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=timeout, allow_errors=True,
                   resources={"metadata": {"path": str(Path(path).resolve().parent)}}).execute()
    return notebook


def verify(paths: list[Path]) -> int:
    """Execute each notebook in full and compare it with its stored outputs (see ``failures``)."""
    code = 0
    for path in paths:
        rows = compare_notebook(nbformat.read(path, as_version=4), execute(path))
        failed = failures(rows)
        counts = {kind: sum(row["class"] == kind for row in rows) for kind in CLASSES}
        print(f"{'FAILED' if failed else 'passed'} {path}: {len(rows)} checked cells, {counts['identical']} identical, "
              f"{counts['digits only']} digits only, {counts['text changed']} text changed, {counts['error']} errors",
              flush=True)
        for row in failed:
            where = "" if row["class"] != "digits only" else f" (not tagged {DIGITS_VARY_TAG})"
            print(f"  code cell {row['cell']}: {row['class']}{where}\n    stored: {row['stored'][:300]}\n"
                  f"    now:    {row['new'][:300]}", flush=True)
        code = code or (1 if failed else 0)
    return code


def compare_folders(stored_dir: Path, new_dir: Path, allow_edits: bool = False) -> list[tuple[str, list[dict] | None]]:
    """``(name, rows)`` per stored notebook; rows None where ``new_dir`` has no copy of it."""
    pairs = []
    for path in sorted(Path(stored_dir).glob("[0-9][0-9]_*.ipynb")):
        target = Path(new_dir) / path.name
        pairs.append((path.name, compare_notebook(nbformat.read(path, as_version=4), nbformat.read(target, as_version=4), allow_edits)
                      if target.exists() else None))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    comparing = sub.add_parser("compare", help="compare stored notebooks with re-executed copies")
    comparing.add_argument("stored", type=Path)
    comparing.add_argument("new", type=Path)
    comparing.add_argument("-o", "--output", type=Path)
    comparing.add_argument("--title", default="Drift report")
    comparing.add_argument("--allow-edits", action="store_true",
                           help="compare notebooks whose code cells were edited, leaving the edited cells out")
    comparing.add_argument("--versions", type=Path, help="a pip freeze of the new environment: list what moved")
    verifying = sub.add_parser("verify", help="re-execute notebooks in full and compare their checked cells")
    verifying.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "verify":
        return verify(args.paths)
    text = report(compare_folders(args.stored, args.new, args.allow_edits), args.title)
    if args.versions:
        lock_text = (Path(__file__).resolve().parent.parent / "requirements" / "lock.txt").read_text()
        moved = moved_versions(args.versions.read_text(), lock_text)
        text += "\n## Versions against the lock\n\n" + "".join(f"- {line}\n" for line in moved or ["none moved"])
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
