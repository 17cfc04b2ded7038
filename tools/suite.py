"""The whole test suite, as `make test` runs it (and CI, through .ci/run).

1. Every solution notebook's digest is checked (tools/digest.py). One whose code cells changed
   since it was executed, or that was never stamped, fails the suite at once: its outputs were
   not produced by its code. Run ``make execute`` and commit.
2. The unit tests, and nbval over every **stale** solution notebook (something it runs changed):
   executed in full, outputs compared with the stored ones.
3. nbval in smoke mode (``BERT_WORKBOOK_SMOKE=1``: training cut short, outputs not compared) over
   every **fresh** solution notebook and every exercise copy in notebooks/: each must run top to
   bottom. Two lanes run at once (one per core); both copies of a notebook share a lane and a disk
   cache of frozen-encoder work (``BERT_WORKBOOK_CACHE_DIR``).

4. The course in a real browser (tools/browser_test.py): JupyterLab on the loopback, notebooks 01
   and 02 run down to their explorers in headless Chromium; stubs, ``[NOT YET]`` hints and live
   widgets checked. It starts on the core that the first smoke lane to finish frees (the lanes are
   balanced with its cost counted against one of them).

``make verify`` re-executes every solution notebook in full instead (releases; the whole proof).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import digest  # noqa: E402

ROOT = digest.ROOT
PYTEST = [sys.executable, "-m", "pytest", "--nbval-current-env", "-p", "no:cacheprovider"]


# Smoke runs compare no outputs, so they may split the cores: WORKERS notebooks at a time, each
# kernel with cores / WORKERS torch threads (measured faster; bench/RESULTS.md). Full runs keep the
# thread count the stored outputs were computed with, one notebook at a time.
WORKERS = int(os.environ.get("BERT_WORKBOOK_TEST_WORKERS", "2")) if importlib.util.find_spec("xdist") else 1


def run(args: list[str], smoke: bool, workers: int = 1) -> int:
    env = {**os.environ, "BERT_WORKBOOK_SMOKE": "1" if smoke else ""}
    if workers > 1:
        threads = max(1, int(env.get("OMP_NUM_THREADS") or os.cpu_count() or 1) // workers)
        env["OMP_NUM_THREADS"] = str(threads)
        args = [*args, "-n", str(workers), "--dist", "loadfile"]
    print("+", ("BERT_WORKBOOK_SMOKE=1 " if smoke else "") + f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS')} "
          + " ".join(args[2:]), flush=True)
    return subprocess.run(args, cwd=ROOT, env=env).returncode


# Smoke-mode seconds of both copies of each notebook on the 2-core CPU, one thread each (estimated
# from the per-cell durations of a measured run, pytest --durations, after env.sample_size,
# env.repetitions and the launch cache):
# what the lanes below are balanced by.
SMOKE_COST = {"06": 230, "04": 220, "05": 200, "07": 160, "08": 140, "09": 120, "02": 120, "01": 50, "03": 50}


def lanes(paths: list[str], count: int, reserved: float = 0) -> list[list[str]]:
    """Split notebooks into ``count`` lanes of about equal smoke cost (heaviest first, each to the
    least loaded lane). Both copies of a notebook (notebooks/NN_*, solutions/NN_*) go to the same
    lane, one after the other, so the second reads the first's frozen-encoder work from the cache.
    ``reserved`` seconds of other work (the browser test) are counted against the last lane."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(Path(path).name[:2], []).append(path)
    loads = [[0, []] for _ in range(max(1, count))]
    loads[-1][0] = reserved
    for prefix in sorted(groups, key=lambda k: (-SMOKE_COST.get(k, 120), k)):
        lane = min(loads, key=lambda load: load[0])
        lane[0] += SMOKE_COST.get(prefix, 120)
        lane[1] += sorted(groups[prefix])
    return [lane_paths for _, lane_paths in loads if lane_paths]


# Seconds of the browser test on one core beside a smoke lane (bench/results/suite.md).
BROWSER_COST = 120


def run_lanes(paths: list[str], count: int, extra_env: dict, then: list[str] | None = None) -> int:
    """nbval in smoke mode over ``paths``: one pytest process per lane, all lanes at once, each
    kernel with cores / lanes torch threads. ``then`` (a command) starts on the core that the first
    lane to finish frees. Prints each report when everything has finished."""
    env = {**os.environ, "BERT_WORKBOOK_SMOKE": "1", **extra_env}
    env["OMP_NUM_THREADS"] = str(max(1, int(env.get("OMP_NUM_THREADS") or os.cpu_count() or 1) // max(1, count)))
    running = []
    for number, lane in enumerate(lanes(paths, count, reserved=BROWSER_COST if then and count > 1 else 0), 1):
        print(f"+ lane {number}: BERT_WORKBOOK_SMOKE=1 OMP_NUM_THREADS={env['OMP_NUM_THREADS']} pytest --nbval-lax "
              + " ".join(lane), flush=True)
        log = tempfile.TemporaryFile(mode="w+")
        running.append((f"lane {number}", subprocess.Popen([*PYTEST, "--nbval-lax", *lane], cwd=ROOT, env=env,
                                                           stdout=log, stderr=subprocess.STDOUT, text=True), log))
    if then:
        while running and all(process.poll() is None for _, process, _ in running):
            time.sleep(1)
        print("+ python", *then[1:], flush=True)
        log = tempfile.TemporaryFile(mode="w+")
        running.append((then[-1], subprocess.Popen(then, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": env["OMP_NUM_THREADS"]},
                                                   stdout=log, stderr=subprocess.STDOUT, text=True), log))
    code = 0
    for name, process, log in running:
        code = process.wait() or code
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
    # Unit tests compare no notebook outputs: they may use both cores. Stale notebooks run one at
    # a time with the thread count their stored outputs were computed with.
    code = run([*PYTEST, "tests"], smoke=False, workers=WORKERS)
    if stale:
        code = code or run([*PYTEST, "--nbval", *stale], smoke=False)
    exercises = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    # Both copies of a notebook run in one lane, one after the other, and share a cache of
    # frozen-encoder work on disk: the second copy reads what the first computed.
    browser = [sys.executable, "tools/browser_test.py"]
    # After a failure no lane runs, and the browser test starts at once.
    with tempfile.TemporaryDirectory(prefix="bert-workbook-cache-") as cache:
        code = run_lanes([] if code else fresh + exercises, WORKERS, {"BERT_WORKBOOK_CACHE_DIR": cache},
                         then=browser) or code
    print(f"suite: {'passed' if code == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s "
          f"({len(stale)} solution notebooks re-executed in full, {len(fresh)} fresh)")
    return code


if __name__ == "__main__":
    sys.exit(main())
