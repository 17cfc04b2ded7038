"""The solution notebooks' execution digest (tools/digest.py): what it follows, and that it can
tell a changed helper that a notebook runs from one it does not."""

import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import digest  # noqa: E402

ENV = {"python": "3.11", "torch": "1.0"}


@pytest.fixture()
def project(tmp_path):
    """A small package (a imports b inside a function; c is unrelated), data, and a notebook using a."""
    package = tmp_path / "helpers"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text('"""package"""\n')
    (package / "a.py").write_text("def f():\n    from bert_workbook import b\n    return b.g()\n")
    (package / "b.py").write_text("def g():\n    return 1\n")
    (package / "c.py").write_text("def h():\n    return 2\n")
    (package / "weights" / "w.json").write_text("{}")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# title"),
                      nbformat.v4.new_code_cell("%matplotlib inline\nfrom bert_workbook import a\nprint(a.f())")]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(notebook, path)
    digest.stamp(path, package, ENV)
    return path, package


def test_the_closure_follows_imports_inside_functions_and_skips_unrelated_modules(project):
    path, package = project
    notebook = nbformat.read(path, as_version=4)
    assert digest.notebook_digest(notebook, package, ENV)["modules"] == ["__init__", "a", "b"]


def test_a_fresh_notebook_stays_fresh(project):
    path, package = project
    assert digest.status(path, package, ENV) == "fresh"


def test_changing_a_helper_the_notebook_runs_makes_it_stale(project):
    path, package = project
    (package / "b.py").write_text("def g():\n    return 3\n")
    assert digest.status(path, package, ENV) == "stale"


def test_changing_an_unrelated_helper_does_not(project):
    path, package = project
    (package / "c.py").write_text("def h():\n    return 4\n")
    assert digest.status(path, package, ENV) == "fresh"


def test_data_files_and_the_environment_count(project):
    path, package = project
    assert digest.status(path, package, {**ENV, "torch": "2.0"}) == "stale"
    (package / "weights" / "w.json").write_text('{"changed": true}')
    assert digest.status(path, package, ENV) == "stale"


def test_editing_code_without_executing_is_caught_but_markdown_is_free(project):
    path, package = project
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[0].source = "# a better title"
    nbformat.write(notebook, path)
    assert digest.status(path, package, ENV) == "fresh"
    notebook.cells[1].source += "\nprint(2)"
    nbformat.write(notebook, path)
    assert digest.status(path, package, ENV) == "edited"


def test_an_unstamped_notebook_is_reported(tmp_path, project):
    _, package = project
    path = tmp_path / "02_y.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    assert digest.status(path, package, ENV) == "unstamped"


def test_imports_of_every_form_are_found():
    source = ("from bert_workbook import assets, env\nfrom bert_workbook.data import load\n"
              "import bert_workbook.mlm as m\nimport numpy\nfrom . import x\n!pip install y")
    assert digest.imported_modules(source) == {"assets", "env", "data", "data.load", "mlm"}


def test_relative_imports_and_subpackages_are_followed(tmp_path):
    package = tmp_path / "bert_workbook"
    (package / "measure").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "stats.py").write_text("X = 1\n")
    (package / "env.py").write_text("def f():\n    from . import stats\n")
    (package / "measure" / "__init__.py").write_text("from .heads import fit\nfrom ..env import f\n")
    (package / "measure" / "heads.py").write_text("from bert_workbook.measure._common import y\n")
    (package / "measure" / "_common.py").write_text("y = 2\n")
    (package / "unused.py").write_text("")
    assert digest.module_closure({"measure"}, package) == [
        "__init__", "env", "measure", "measure._common", "measure.heads", "stats"]
    assert digest.module_closure({"measure.heads"}, package) == [
        "__init__", "env", "measure", "measure._common", "measure.heads", "stats"]
    assert digest.module_closure({"unused"}, package) == ["__init__", "unused"]


def test_every_solution_notebook_depends_on_the_modules_it_imports():
    for path in digest.solution_notebooks():
        notebook = nbformat.read(path, as_version=4)
        named = {name for name in set().union(*(digest.imported_modules(s) for s in digest.code_sources(notebook)))
                 if digest.module_path(name) is not None}
        modules = set(digest.notebook_digest(notebook)["modules"])
        assert named and named <= modules, path.name
        assert "__init__" in modules and "env" in modules, path.name


def test_the_package_imports_its_modules_only_in_ways_the_digest_follows():
    for module in (ROOT / "helpers" / "bert_workbook").rglob("*.py"):
        text = module.read_text()
        assert "import_module(" not in text and "__import__(" not in text, module.name


def test_stamping_a_copy_of_a_real_notebook_round_trips(tmp_path):
    source = digest.solution_notebooks()[0]
    path = tmp_path / source.name
    shutil.copy(source, path)
    stamped = digest.stamp(path)
    assert digest.status(path) == "fresh"
    assert nbformat.read(path, as_version=4).metadata["bert_workbook"]["digest"] == stamped["digest"]


def test_the_suite_refuses_a_notebook_edited_without_executing_it(monkeypatch, capsys):
    import suite

    monkeypatch.setattr(suite.digest, "status", lambda path: "edited")
    monkeypatch.setattr(suite, "run", lambda *args, **kwargs: pytest.fail("nothing may run"))
    assert suite.main() == 1
    assert "make execute NOTEBOOKS=" in capsys.readouterr().out
