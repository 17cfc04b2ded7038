"""Test-suite wiring for notebooks run by nbval (tools/suite.py).

Under pytest-xdist with ``--dist loadgroup``, both copies of a notebook (``solutions/NN_*`` and
``notebooks/NN_*``) form one group and run one after the other on the same worker: with
``BERT_WORKBOOK_CACHE_DIR`` set, the second copy reads the frozen-encoder work of the first from
disk instead of recomputing it.
"""

from pathlib import Path

import pytest


def notebook_group(path: Path) -> str | None:
    """``"notebook-NN"`` for a numbered notebook of solutions/ or notebooks/, else None."""
    if path.suffix == ".ipynb" and path.parent.name in ("solutions", "notebooks") and path.name[:2].isdigit():
        return f"notebook-{path.name[:2]}"
    return None


def pytest_collection_modifyitems(items):
    for item in items:
        group = notebook_group(Path(str(item.fspath)))
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
