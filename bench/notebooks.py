"""Execute every notebook on this machine and record its wall time and peak memory.

    python bench/notebooks.py [--out bench/RESULTS-notebooks.md] [paths...]

Peak memory is the kernel process's resident set size (with its children), sampled every 50 ms,
so a short spike between samples can be missed. Notebooks run one at a time, offline, with the
embedded assets, in memory (the committed notebooks are not touched).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def memory_tree(process: psutil.Process, pss: bool = True) -> tuple[int, int]:
    """(RSS, PSS) in bytes of ``process`` and all its children, summed. RSS counts a page that
    several of them share (the torch library of a kernel and of the processes it launches) in
    each; PSS splits it between them, so the PSS sum counts it once, as a container's memory
    limit does. For one process alone the two agree but for pages shared with other programs.
    Reading PSS walks every page table (slow for big processes): ``pss=False`` skips it (0)."""
    rss = proportional = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            rss += p.memory_info().rss
            if pss:
                proportional += p.memory_full_info().pss
        except (psutil.Error, AttributeError):
            continue
    return rss, proportional


def run_notebook(path: Path, timeout: int = 900) -> tuple[float, int, int]:
    """(wall seconds, peak RSS, peak PSS in bytes of the kernel and its children) of executing
    ``path`` top to bottom (see ``memory_tree``)."""
    nb = nbformat.read(path, as_version=4)  # executed in memory: the file is not written
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    peak, done = [0, 0], threading.Event()
    with client.setup_kernel():
        process = psutil.Process(client.km.provisioner.process.pid)

        def sample() -> None:
            # Reading PSS walks every page table: about 14 ms for a kernel holding BERT-base, so
            # read every 50 ms it took a fifth of a core from the notebook being timed (wall
            # times 10-25% high on two cores). It is read on a new high of RSS (by 2%), and
            # otherwise at most once a second while RSS is near its peak.
            last_read, last_read_rss = float("-inf"), 0
            while not done.is_set():
                rss, _ = memory_tree(process, pss=False)
                now = time.perf_counter()
                if rss > 1.02 * last_read_rss or (rss >= 0.9 * peak[0] and now - last_read >= 1.0):
                    rss, pss = memory_tree(process)
                    peak[1] = max(peak[1], pss)
                    last_read, last_read_rss = now, rss
                peak[0] = max(peak[0], rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    return wall, peak[0], peak[1]


def cpu_name() -> str:
    """The processor's model name where the system says it (Linux), else its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {platform.machine()}"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """The machine a bench ran on: with the processor, the vector instructions torch's kernels use
    (AVX2, AVX-512), since two machines with the same core count can differ in speed by them."""
    import torch

    cpu = f"{cpu_name()}, torch kernels {torch.backends.cpu.get_cpu_capability()}"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    mem = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} CPU cores ({cpu}), {mem:.0f} GiB RAM, {gpu}; torch threads "
            f"{torch.get_num_threads()}; python {platform.python_version()}, torch {torch.__version__}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS-notebooks.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.pop("BERT_WORKBOOK_MODEL", None)
    paths = args.paths or sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")) + sorted(
        (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    rows = []
    for path in paths:
        wall, peak, peak_pss = run_notebook(path.resolve())
        rel = path.resolve().relative_to(ROOT)
        rows.append(f"| {rel} | {wall:.1f} | {peak / 2**20:.0f} | {peak_pss / 2**20:.0f} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "# Notebook wall time and peak memory",
        "",
        f"Measured {dt.date.today().isoformat()} with `python bench/notebooks.py` on: {machine_line()}.",
        "Targets: each notebook under 90 s and under 2 GB (Binder).",
        "",
        "| notebook | wall time (s) | peak RSS (MiB) | peak PSS (MiB) |",
        "|---|---|---|---|",
        *rows,
        "",
    ])
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
