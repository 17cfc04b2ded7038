"""The whole test suite, as `make test` runs it (and CI, through .ci/run).

1. Every solution notebook's digest is checked (tools/digest.py). One whose code cells changed
   since it was executed, or that was never stamped, fails the suite at once: its outputs were
   not produced by its code. Run ``make execute`` and commit.
2. The unit tests, and nbval over every **stale** solution notebook (something it runs changed):
   executed in full, outputs compared with the stored ones.
3. nbval in smoke mode (``BERT_WORKBOOK_SMOKE=1``: training cut short, outputs not compared) over
   every **fresh** solution notebook and every exercise copy in notebooks/: each must run top to
   bottom.

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


def run(args: list[str], smoke: bool, workers: int = 1, dist: str = "loadfile", extra_env: dict | None = None) -> int:
    env = {**os.environ, "BERT_WORKBOOK_SMOKE": "1" if smoke else "", **(extra_env or {})}
    if workers > 1:
        threads = max(1, int(env.get("OMP_NUM_THREADS") or os.cpu_count() or 1) // workers)
        env["OMP_NUM_THREADS"] = str(threads)
        args = [*args, "-n", str(workers), "--dist", dist]
    print("+", ("BERT_WORKBOOK_SMOKE=1 " if smoke else "") + f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS')} "
          + " ".join(args[2:]), flush=True)
    return subprocess.run(args, cwd=ROOT, env=env).returncode


# Smoke-mode cost of each notebook relative to the others (measured; bench/RESULTS.md): the
# heaviest start first, so that two workers finish together instead of one waiting on the last.
SMOKE_ORDER = ("07", "06", "05", "04", "08", "09", "02", "01", "03")


def heaviest_first(paths: list[str]) -> list[str]:
    rank = {prefix: i for i, prefix in enumerate(SMOKE_ORDER)}
    return sorted(paths, key=lambda p: (rank.get(Path(p).name[:2], len(rank)), p))


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
    # Both copies of a notebook run on one worker, one after the other (conftest.py groups them),
    # and share a cache of frozen-encoder work on disk: the second copy reads what the first computed.
    with tempfile.TemporaryDirectory(prefix="bert-workbook-cache-") as cache:
        code = code or run([*PYTEST, "--nbval-lax", *heaviest_first(fresh + exercises)], smoke=True,
                           workers=WORKERS, dist="loadgroup", extra_env={"BERT_WORKBOOK_CACHE_DIR": cache})
    print(f"suite: {'passed' if code == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s "
          f"({len(stale)} solution notebooks re-executed in full, {len(fresh)} fresh)")
    return code


if __name__ == "__main__":
    sys.exit(main())
