"""``python -m bert_workbook.selfcheck``: confirm that every offline asset is installed and loads.

Prints one line per asset and exits 1, naming what is missing and how to install it, if any fails.
"""

from __future__ import annotations

import sys

from bert_workbook import assets, data


def run_selfcheck() -> list[tuple[str, bool, str]]:
    """(asset, ok, detail) for the tokenizers, the encoder's files and each dataset."""
    results = []
    steps = [
        ("uncased WordPiece tokenizer", lambda: f"{len(assets.load_tokenizer('embedded')):,} entries"),
        ("cased WordPiece tokenizer", lambda: f"{len(assets.load_cased_tokenizer()):,} entries"),
        ("GPT-2 byte-level BPE tokenizer", lambda: f"{len(assets.load_byte_level_bpe()):,} entries"),
        ("pretrained encoder files", lambda: str(assets.embedded_model_dir())),
        ("masked-LM weights (trained by this project)",
         lambda: f"{assets.masked_lm_weights().name}, "
                 f"{assets.masked_lm_training_record()['steps']:,} steps"),
    ]
    for name in data.DATASETS:
        steps.append(
            (f"dataset {name}", lambda n=name: str({k: len(v) for k, v in data.load_course_dataset(n).items()}))
        )
    for label, step in steps:
        try:
            results.append((label, True, step()))
        except Exception as error:  # report every missing asset, not just the first
            results.append((label, False, f"{type(error).__name__}: {error}"))
    return results


def main() -> int:
    results = run_selfcheck()
    for label, ok, detail in results:
        print(f"{'ok     ' if ok else 'MISSING'} {label}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
