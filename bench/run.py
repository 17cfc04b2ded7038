"""The course's benchmark suite: one command, one report.

    python bench/run.py                      # every part; writes bench/RESULTS.md
    python bench/run.py --only training      # re-measure some parts, keep the others
    python bench/run.py --quick              # a fast run of every part (fewer steps, 2 notebooks)
    python bench/run.py --only notebooks --notebooks 04,05   # re-time some notebooks, keep the rest

Parts (each writes bench/results/<part>.md; RESULTS.md is assembled from all of them, so each part
keeps the date and machine it was measured on):

* notebooks:  every solution notebook executed offline on the CPU: wall time, peak kernel memory;
* training:   fine-tuning throughput with fixed padding (128, 512), dynamic padding, and dynamic
              padding with length-grouped batches, on short sentences and on long reviews;
* tokenizers: fast (Rust) vs slow (Python) WordPiece tokenizer;
* gpu:        BERT-base training step in fp32, with SDPA, in bf16, compiled; MFU (skipped without a GPU);
* suite:      the README's test command, timed (opt-in: `--only suite`; it takes most of an hour).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.pop("BERT_WORKBOOK_MODEL", None)
os.environ.pop("BERT_WORKBOOK_SMOKE", None)

import throughput  # noqa: E402

import notebooks as notebook_bench  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PARTS = ("notebooks", "training", "tokenizers", "gpu")
OPT_IN = ("suite", "verify")
NOTEBOOK_TARGET_S, NOTEBOOK_TARGET_MIB, SUITE_TARGET_S, PADDING_TARGET, MFU_TARGET = 90, 2048, 900, 3.0, 0.35


def header(title: str) -> list[str]:
    return [f"## {title}", "", f"Measured {dt.date.today().isoformat()} on: "
            f"{notebook_bench.machine_line()}.", ""]


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


# The time each notebook is allowed on a 2-core CPU (seconds): the default, and the targets the
# issues set for the notebooks that train.
NOTEBOOK_TARGETS_S = {"04": 240, "05": 180, "06": 180, "07": 480, "02": 150, "08": 180, "09": 120}


def notebook_target(name: str) -> int:
    return NOTEBOOK_TARGETS_S.get(name[:2], NOTEBOOK_TARGET_S)


def _previous_notebook_rows() -> dict[str, str]:
    """The rows of the last notebooks report, by notebook name (kept when only some re-run)."""
    path = RESULTS / "notebooks.md"
    rows = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if line.startswith("| ") and cells[0].endswith(".ipynb"):
                if len(cells) == 6:  # measured before PSS was recorded
                    line = "| " + " | ".join([*cells[:3], "not measured", *cells[3:]]) + " |"
                rows[cells[0]] = line
    return rows


def _previous_notebook_notes() -> list[str]:
    """The paragraphs written below the table of the last notebooks report (by hand: what a row's
    figure means, or what was measured since without the bench), kept when only some re-run."""
    path = RESULTS / "notebooks.md"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    return [line.rstrip() for line in lines[table[-1] + 1:]] if table else []


def part_notebooks(quick: bool, only: set[str] | None = None) -> list[str]:
    paths = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if quick:
        paths = [p for p in paths if p.name[:2] in ("01", "03")]
    previous = _previous_notebook_rows()
    lines = header("Notebooks: wall time and peak memory (CPU, offline)")
    lines += ["Each solution notebook executed top to bottom with nbclient, one at a time; the",
              "memory of the kernel and every process it starts sampled every 50 ms as RSS (a page shared "
              "by several processes, such as the torch library of a kernel and of the training processes "
              "it launches, counted in each), and as PSS (counted once, as a container's limit counts it; "
              "the 2 GB verdict reads PSS) on each new high of RSS and at most once a second near its "
              "peak, since reading PSS costs the machine time. Targets: under 2 GB (Binder) each, and "
              f"under {NOTEBOOK_TARGET_S} s unless the notebook has its own time target "
              "(the notebooks that train). A row re-measured on a later day says so.", "",
              "| notebook | wall time (s) | peak RSS (MiB) | peak PSS (MiB) | time target (s) | time | 2 GB |",
              "|---|---|---|---|---|---|---|"]
    today = dt.date.today().isoformat()
    for path in paths:
        if only and path.name[:2] not in only:
            if path.name in previous:
                lines.append(previous[path.name])
            continue
        wall, peak, peak_pss = notebook_bench.run_notebook(path)
        mib, pss_mib = peak / 2**20, peak_pss / 2**20
        target = notebook_target(path.name)
        lines.append(f"| {path.name} | {wall:.0f} ({today}) | {mib:.0f} | {pss_mib:.0f} | {target} | "
                     f"{met(wall <= target)} | {met(pss_mib <= NOTEBOOK_TARGET_MIB)} |")
        print(lines[-1], flush=True)
    if only:  # a partial run: the notes about the rows it kept still hold
        lines += _previous_notebook_notes()
    return lines


def part_training(quick: bool) -> list[str]:
    from bert_workbook.data import load_course_dataset

    steps = 3 if quick else 12
    lines = header("Fine-tuning throughput: padding and batching")
    lines += [f"The embedded encoder (MiniLM, 6 layers, width 384) with a new classification head; "
              f"AdamW; batches of 16; {steps} timed steps after 2 untimed ones, on a random sample "
              "of the batches of 800 training examples. *Tokens/s* counts real tokens, not padding. "
              "Speed-up: examples/s relative to `padding=\"max_length\", max_length=128`, the recipe "
              "of the lecture notes. Target: dynamic padding with length-grouped batches at least "
              f"{PADDING_TARGET:.0f}x that recipe's throughput.", ""]
    verdicts = []
    for name, what in [("rotten_tomatoes", "Rotten Tomatoes sentences (notebooks 04-06)"),
                       ("imdb", "IMDB reviews (long: max_length=128 truncates most of them)")]:
        split = load_course_dataset(name)["train"].select(range(800))
        table = throughput.padding_throughput(split["text"], split["label"], steps=steps)
        print(name, table.round(2).to_string(), sep="\n", flush=True)
        lines += [f"**{what}**", "", "| batching | examples/s | tokens/s | padding | speed-up |",
                  "|---|---|---|---|---|"]
        for strategy, row in table.iterrows():
            lines.append(f"| {strategy} | {row['examples/s']:.1f} | {row['tokens/s']:.0f} | "
                         f"{row['padding']:.0%} | {row['speed-up']:.2f}x |")
        lines.append("")
        # The fair reference keeps the same text: 128 tokens if no example is longer, else 512.
        longest = max(len(ids) for ids in throughput.tokenized_lengths(split["text"]))
        reference = "max_length 128" if longest <= 128 else "max_length 512"
        ratio = (table.loc["dynamic + length-grouped", "examples/s"]
                 / table.loc[reference, "examples/s"])
        verdicts.append((what.split(" (")[0], reference, longest, ratio))
    for what, reference, longest, ratio in verdicts:
        lines.append(f"- {what} (longest {longest} tokens): dynamic + length-grouped is {ratio:.2f}x "
                     f"the `{reference}` recipe, the one that keeps the same text: target "
                     f"{met(ratio >= PADDING_TARGET)}.")
    lines.append("- On IMDB the 128-token recipe is faster only because it drops most of each "
                 "review: its speed is bought with lost text.")
    return lines


def part_tokenizers(quick: bool) -> list[str]:
    from bert_workbook.data import load_course_dataset

    texts = load_course_dataset("imdb")["train"]["text"][: 200 if quick else 2000]
    result = throughput.tokenizer_throughput(texts, repeats=1 if quick else 3)
    lines = header("Tokenizer throughput: fast (Rust) vs slow (Python)")
    lines += [f"The same uncased WordPiece vocabulary on {len(texts):,} IMDB reviews, one batch "
              "call; the fastest of several runs.", "",
              "| tokenizer | texts/s |", "|---|---|",
              f"| fast (`BertTokenizerFast`, Rust) | {result['fast texts/s']:.0f} |",
              f"| slow (`BertTokenizerLegacy`, Python) | {result['slow texts/s']:.0f} |", "",
              f"The fast tokenizer is **{result['ratio']:.1f}x** faster."]
    return lines


def part_gpu(quick: bool) -> list[str]:
    table = throughput.gpu_training_throughput(steps=5 if quick else 20)
    lines = header("GPU: BERT-base training step")
    if table is None:
        return lines + ["Skipped: no CUDA GPU on this machine. The part runs BERT-base (random "
                        "weights) training steps in fp32, with SDPA attention, in bf16 autocast and "
                        "compiled, and reports MFU against the GPU's bf16 peak (target: "
                        f"{MFU_TARGET:.0%} on an H100)."]
    peak = table.attrs["peak"]
    lines += [f"{table.attrs['gpu']}; batches of {table.attrs['batch_size']} x "
              f"{table.attrs['seq_len']} tokens; MFU = tokens/s x training FLOPs per token / "
              f"bf16 dense peak ({peak / 1e12:.0f} TFLOP/s)." if peak else
              f"{table.attrs['gpu']}: peak unknown, MFU not computed.", "",
              "| setting | tokens/s | MFU |", "|---|---|---|"]
    for setting, row in table.iterrows():
        if isinstance(row.get("error"), str):
            lines.append(f"| {setting} | failed: {row['error']} | |")
        else:
            lines.append(f"| {setting} | {row['tokens/s']:.0f} | {row['MFU']:.1%} |")
    best = table["MFU"].max() if "MFU" in table else float("nan")
    lines += ["", f"Best MFU {best:.1%}: target {met(best >= MFU_TARGET)}."]
    return lines


def _timed_make(target: str) -> tuple[bool, float]:
    start = time.perf_counter()
    completed = subprocess.run(["make", target], cwd=ROOT)
    return completed.returncode == 0, time.perf_counter() - start


def part_suite(quick: bool) -> list[str]:
    """`make test`: unit tests, full re-execution of the solution notebooks whose digest changed,
    smoke runs of the rest (tools/suite.py)."""
    passed, seconds = _timed_make("test")
    lines = header("The test suite (`make test`)")
    return lines + [f"`make test` {'passed' if passed else 'FAILED'} in {seconds / 60:.1f} min (target "
                    f"{SUITE_TARGET_S // 60} min when no notebook changed: {met(seconds <= SUITE_TARGET_S)}).",
                    "", "What it ran: `python tools/digest.py status` says which solution notebooks are fresh."]


def part_verify(quick: bool) -> list[str]:
    """`make verify`: every solution notebook re-executed in full and compared (the whole proof)."""
    passed, seconds = _timed_make("verify")
    lines = header("The whole proof (`make verify`)")
    return lines + [f"`make verify` {'passed' if passed else 'FAILED'} in {seconds / 60:.1f} min "
                    "(no target: releases, and CI's limit is 90 min)."]


RUNNERS = {"notebooks": part_notebooks, "training": part_training, "tokenizers": part_tokenizers,
           "gpu": part_gpu, "suite": part_suite, "verify": part_verify}


def assemble() -> str:
    intro = (ROOT / "bench" / "README.md").read_text(encoding="utf-8").strip()
    parts = [intro, ""]
    for name in (*PARTS, *OPT_IN):
        path = RESULTS / f"{name}.md"
        if path.is_file():
            parts += [path.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts among {', '.join(PARTS + OPT_IN)}")
    parser.add_argument("--quick", action="store_true", help="fewer steps and notebooks (a check)")
    parser.add_argument("--notebooks", default="",
                        help="with the notebooks part: only these (e.g. 04,05); the others keep their rows")
    args = parser.parse_args()
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in RUNNERS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose among {', '.join(RUNNERS)}")
    RESULTS.mkdir(exist_ok=True)
    for name in chosen:
        print(f"== {name}", flush=True)
        if name == "notebooks" and args.notebooks:
            lines = part_notebooks(args.quick, {n.strip() for n in args.notebooks.split(",")})
        else:
            lines = RUNNERS[name](args.quick)
        if args.quick:
            lines.insert(1, "\n*A `--quick` run: fewer steps and notebooks; not the reference figures.*")
        (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (ROOT / "bench" / "RESULTS.md").write_text(assemble() + "\n", encoding="utf-8")
    print(f"wrote {ROOT / 'bench' / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
