"""The whole test suite, as `make test` runs it (and CI, through .ci/run).

1. Every solution notebook's digest is checked (tools/digest.py). One whose code cells changed
   since it was executed, or that was never stamped, fails the suite at once: its outputs were
   not produced by its code. Run ``make execute`` and commit.
2. Every **stale** solution notebook (something it runs changed) executed in full, one at a time,
   and each checked cell compared with the stored one (``tools/drift.py verify``): identical, or,
   in a cell tagged ``digits-vary`` (figures out of training, whose last digits depend on the
   thread count and the CPU), the same words with other digits.
3. Two lanes at once, one per core, each with one torch thread: a share of the unit tests, then
   nbval in smoke mode (``BERT_WORKBOOK_SMOKE=1``: training cut short, outputs not compared) over
   a share of the **fresh** solution notebooks and of the exercise copies in notebooks/: each must
   run top to bottom. Both copies of a notebook share a lane and a disk cache of frozen-encoder
   work (``BERT_WORKBOOK_CACHE_DIR``). The lanes are balanced by measured costs.

4. The course in a real browser (tools/browser_test.py): JupyterLab on the loopback, notebooks 01
   and 02 run down to their explorers in headless Chromium; stubs, ``[NOT YET]`` hints and live
   widgets checked. It starts on the core that the first smoke lane to finish frees (the lanes are
   balanced with its cost counted against one of them).

``make verify`` re-executes every solution notebook in full instead (releases; the whole proof).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digest  # noqa: E402

ROOT = digest.ROOT
PYTEST = [sys.executable, "-m", "pytest", "--nbval-current-env", "-p", "no:cacheprovider"]


# Unit tests and smoke runs compare no stored outputs, so they may split the cores: WORKERS lanes
# at once, each with cores / WORKERS torch threads (measured faster; bench/RESULTS.md). Full runs
# keep the thread count the stored outputs were computed with, one notebook at a time.
WORKERS = int(os.environ.get("BERT_WORKBOOK_TEST_WORKERS", "2"))


def run(args: list[str], smoke: bool) -> int:
    env = {**os.environ, "BERT_WORKBOOK_SMOKE": "1" if smoke else ""}
    print("+", ("BERT_WORKBOOK_SMOKE=1 " if smoke else "") + f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS')} "
          + " ".join(args[2:] if args[1] == "-m" else ["python", *args[1:]]), flush=True)
    return subprocess.run(args, cwd=ROOT, env=env).returncode


# Seconds on one core (one torch thread, the other core busy) of each group a lane runs, measured
# with pytest --durations on the 2-core CPU (bench/results/suite.md): what the lanes are balanced by.
# Notebooks: both copies in smoke mode, after env.sample_size, env.repetitions and the caches.
SMOKE_COST = {"04": 180, "09": 150, "05": 140, "06": 125, "02": 120, "07": 115, "08": 100, "03": 50, "01": 40}
# Unit tests: a file named here is a group of its own; the rest of tests/ is one more group.
UNIT_COST = {"tests/test_finetune.py": 80}
UNITS_REST_COST = 95


@dataclass
class Lane:
    """What one core runs, in order: unit tests (``units``: pytest arguments; outputs compared
    with nothing stored, smoke mode off), then ``notebooks`` in smoke mode."""

    cost: float = 0
    units: list[str] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)


def unit_groups() -> dict[tuple[str, ...], float]:
    """The unit tests as groups of pytest arguments, each with its cost."""
    alone = [path for path in UNIT_COST if (ROOT / path).exists()]
    rest = ("tests", *[f"--ignore={path}" for path in alone])
    return {rest: UNITS_REST_COST, **{(path,): UNIT_COST[path] for path in alone}}


def lanes(paths: list[str], count: int, reserved: float = 0,
          units: dict[tuple[str, ...], float] | None = None) -> list[Lane]:
    """Split unit-test groups and notebooks into ``count`` lanes of about equal cost (heaviest
    first, each to the least loaded lane). Both copies of a notebook (notebooks/NN_*,
    solutions/NN_*) go to the same lane, one after the other, so the second reads the first's
    frozen-encoder work from the cache. ``reserved`` seconds of other work (the browser test) are
    counted against the last lane."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(Path(path).name[:2], []).append(path)
    work = [(SMOKE_COST.get(prefix, 120), prefix, "notebooks", sorted(group)) for prefix, group in groups.items()]
    work += [(cost, " ".join(args), "units", list(args)) for args, cost in (units or {}).items()]
    loads = [Lane() for _ in range(max(1, count))]
    loads[-1].cost = reserved
    for cost, _, kind, items in sorted(work, key=lambda w: (-w[0], w[1])):
        lane = min(loads, key=lambda load: load.cost)
        lane.cost += cost
        getattr(lane, kind).extend(items)
    return [lane for lane in loads if lane.units or lane.notebooks]


# Seconds of the browser test on one core beside a smoke lane, with the lanes' cache
# (bench/results/suite.md).
BROWSER_COST = 120


def _run_lane(lane: Lane, env: dict, log) -> int:
    """A lane's steps, one after the other, into ``log``: every step runs even if one failed."""
    code = 0
    if lane.units:  # no notebook cache, no smoke mode: as the unit tests expect
        unit_env = {k: v for k, v in env.items() if k not in ("BERT_WORKBOOK_CACHE_DIR", "BERT_WORKBOOK_SMOKE")}
        code = subprocess.run([*PYTEST, *lane.units], cwd=ROOT, env=unit_env, stdout=log,
                              stderr=subprocess.STDOUT).returncode or code
    if lane.notebooks:
        code = subprocess.run([*PYTEST, "--nbval-lax", *lane.notebooks], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT).returncode or code
    return code


def run_lanes(planned: list[Lane], extra_env: dict, then: list[str] | None = None) -> int:
    """Run the ``planned`` lanes all at once, each with cores / lanes torch threads: its unit tests,
    then its notebooks in smoke mode. ``then`` (a command, with ``extra_env`` too) starts on the
    core that the first lane to finish frees. Prints each report when everything has finished."""
    env = {**os.environ, "BERT_WORKBOOK_SMOKE": "1", **extra_env}
    env["OMP_NUM_THREADS"] = str(max(1, int(env.get("OMP_NUM_THREADS") or os.cpu_count() or 1) // max(1, len(planned))))
    results: dict[str, int] = {}
    logs, threads = {}, []
    for number, lane in enumerate(planned, 1):
        name = f"lane {number}"
        print(f"+ {name} (OMP_NUM_THREADS={env['OMP_NUM_THREADS']}): "
              + (f"pytest {' '.join(lane.units)}; " if lane.units else "")
              + (f"BERT_WORKBOOK_SMOKE=1 pytest --nbval-lax {' '.join(lane.notebooks)}" if lane.notebooks else ""),
              flush=True)
        logs[name] = tempfile.TemporaryFile(mode="w+")

        def run_one(name: str = name, lane: Lane = lane) -> None:
            results[name] = _run_lane(lane, env, logs[name])

        thread = threading.Thread(target=run_one)
        thread.start()
        threads.append(thread)
    if then:
        while threads and all(thread.is_alive() for thread in threads):
            time.sleep(1)
        print("+ python", *then[1:], flush=True)
        logs[then[-1]] = tempfile.TemporaryFile(mode="w+")
        results[then[-1]] = subprocess.run(then, cwd=ROOT, env={**os.environ, **extra_env, "OMP_NUM_THREADS": env["OMP_NUM_THREADS"]},
                                           stdout=logs[then[-1]], stderr=subprocess.STDOUT).returncode
    for thread in threads:
        thread.join()
    code = 0
    for name, log in logs.items():
        code = results.get(name, 1) or code
        log.seek(0)
        print(f"--- {name}", flush=True)
        sys.stdout.write(log.read())
    return code


def main() -> int:
    start = time.perf_counter()
    statuses = {path.relative_to(ROOT).as_posix(): digest.status(path) for path in digest.solution_notebooks()}
    for name, state in statuses.items():
        print(f"{state:<9} {name}")
    broken = [name for name, state in statuses.items() if state in ("edited", "unstamped")]
    if broken:
        print(f"\n{', '.join(broken)}: code changed since the stored outputs were produced (or never "
              "stamped). Re-execute and stamp: make execute NOTEBOOKS=<path>, then commit.")
        return 1
    stale = [name for name, state in statuses.items() if state == "stale"]
    fresh = [name for name, state in statuses.items() if state == "fresh"]
    # Stale notebooks first, one at a time, with the thread count their stored outputs were
    # computed with. Then the lanes, one per core: unit tests, and notebooks in smoke mode.
    code = run([sys.executable, "tools/drift.py", "verify", *stale], smoke=False) if stale else 0
    exercises = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    # After a failed full run the lanes run the unit tests only. Both copies of a notebook run in
    # one lane, one after the other, and share a cache of frozen-encoder work on disk with the
    # browser test: the second copy reads what the first computed.
    planned = lanes([] if code else fresh + exercises, WORKERS, reserved=BROWSER_COST if WORKERS > 1 else 0,
                    units=unit_groups())
    with tempfile.TemporaryDirectory(prefix="bert-workbook-cache-") as cache:
        code = run_lanes(planned, {"BERT_WORKBOOK_CACHE_DIR": cache},
                         then=[sys.executable, "tools/browser_test.py"]) or code
    print(f"suite: {'passed' if code == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s "
          f"({len(stale)} solution notebooks re-executed in full, {len(fresh)} fresh)")
    return code


if __name__ == "__main__":
    sys.exit(main())
