"""Train the course's embedded masked-language-model weights (run on demand, not in CI).

The embedded encoder (all-MiniLM-L6-v2) was never trained to predict masked tokens. This script
continues its training with BERT's masked-LM objective on the course corpora, keeping the word
embeddings frozen (the output layer is tied to them, as in BERT), and writes the weights that
changed to ``helpers/bert_workbook/weights/`` as float16 safetensors. ``bert_workbook.assets.load_masked_lm`` puts
them on top of the installed encoder.

    python tools/train_mlm.py --minutes 60 --threads 2

``--extra-train`` adds plain-text files (one document per line, e.g. the broad-English corpus that
``tools/broad_english.py`` writes) to the course corpus; ``--extra-held-out`` reports held-out
accuracy on such a file as well; ``--init shipped`` continues from the shipped weights instead of a
fresh head (the record then lists both stages).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from bert_workbook.assets import load_masked_lm, load_tokenizer
from bert_workbook.data import load_mlm_corpus
from bert_workbook.env import seed_everything
from bert_workbook.masking import mask_tokens
from bert_workbook.mlm import accuracy_by_status, masked_lm_loss, special_tokens_mask, token_windows

OUT_DIR = Path(__file__).resolve().parents[1] / "helpers" / "bert_workbook" / "weights"


def chain_records(previous: dict, stage: dict) -> dict:
    """The record of weights trained in stages: ``stage`` continued from the weights ``previous``
    describes. Top-level figures cover the whole run (steps and minutes added up, accuracy before
    the first stage and after the last); ``stages`` keeps each stage's own record."""
    stages = previous.get("stages", [previous]) + [stage]
    record = {"steps": sum(s["steps"] for s in stages), "batch": stage["batch"], "length": stage["length"],
              "minutes": round(sum(s["seconds"] / 60 if s.get("seconds") else s["minutes"] for s in stages), 1),
              "held_out_loss": stage["held_out_loss"], "held_out_accuracy": stage["held_out_accuracy"],
              "before": stages[0]["before"], "stages": stages}
    if "extra_held_out_accuracy" in stage:
        record["extra_held_out_accuracy"] = stage["extra_held_out_accuracy"]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--steps", type=int, default=None,
                        help="a fixed number of steps (the cosine schedule's length; --minutes is then ignored): "
                             "the run is then reproducible, which a time budget is not")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--freeze-layers", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--init", choices=("fresh", "shipped"), default="fresh")
    parser.add_argument("--extra-train", type=Path, nargs="*", default=[])
    parser.add_argument("--extra-held-out", type=Path, default=None)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")

    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    seed_everything(0)
    tokenizer = load_tokenizer()
    texts = load_mlm_corpus("train")
    for path in args.extra_train:
        texts += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = token_windows(tokenizer, texts, args.length)
    held_out = token_windows(tokenizer, load_mlm_corpus("validation"), args.length)[:1024]
    print(f"train windows {len(train)}, held-out windows {len(held_out)}", flush=True)
    broad = None
    if args.extra_held_out is not None:
        lines = [line for line in args.extra_held_out.read_text(encoding="utf-8").splitlines() if line.strip()]
        broad = token_windows(tokenizer, lines, args.length)[:1024]

    model = load_masked_lm("embedded", head="trained" if args.init == "shipped" else "fresh")
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    for layer in model.bert.encoder.layer[: args.freeze_layers]:
        layer.requires_grad_(False)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    print(f"trainable parameters {sum(p.numel() for p in trainable.values()):,}", flush=True)
    optimizer = torch.optim.AdamW(trainable.values(), lr=args.lr, weight_decay=0.01)
    vocab, mask_id = tokenizer.vocab_size, tokenizer.mask_token_id

    eval_gen = torch.Generator().manual_seed(1)
    eval_inputs, eval_labels = mask_tokens(held_out, special_tokens_mask(held_out, tokenizer), vocab,
                                           mask_id, generator=eval_gen, mask_replace_prob=1.0,
                                           random_replace_prob=0.0)

    if broad is not None:
        broad_inputs, broad_labels = mask_tokens(broad, special_tokens_mask(broad, tokenizer), vocab,
                                                 mask_id, generator=torch.Generator().manual_seed(1),
                                                 mask_replace_prob=1.0, random_replace_prob=0.0)

    def evaluate():
        """Held-out loss and top-1 accuracy at the (all [MASK]) selected positions."""
        report = accuracy_by_status(model, held_out, eval_inputs, eval_labels, mask_id,
                                    batch_size=128)["all selected"]
        model.train()
        return report["loss"], report["accuracy"]

    def evaluate_broad():
        """The same on the extra held-out text, or None."""
        if broad is None:
            return None
        report = accuracy_by_status(model, broad, broad_inputs, broad_labels, mask_id,
                                    batch_size=128)["all selected"]
        model.train()
        return round(report["accuracy"], 4)

    gen = torch.Generator().manual_seed(0)
    loss0, acc0 = evaluate()
    broad0 = evaluate_broad()
    print(f"step 0 held-out loss {loss0:.3f} acc {acc0:.3f} extra held-out acc {broad0}", flush=True)
    deadline = math.inf if args.steps else time.time() + args.minutes * 60
    warmup, step, log = args.warmup, 0, []
    est_steps = args.steps
    model.train()
    started = time.time()

    def finished() -> bool:
        """The fixed step count is reached, or the time budget spent."""
        return step == args.steps or time.time() >= deadline

    while not finished():
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(order) - args.batch + 1, args.batch):
            batch = train[order[i:i + args.batch]]
            inputs, labels = mask_tokens(batch, special_tokens_mask(batch, tokenizer), vocab, mask_id,
                                         generator=gen)
            step += 1
            if est_steps is None and step == 20:
                per_step = (time.time() - started) / 20
                est_steps = int(args.minutes * 60 / per_step)
                print(f"{per_step:.2f} s/step, about {est_steps} steps", flush=True)
            total = est_steps or 10**9
            scale = min(step / warmup, 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0))))
            for group in optimizer.param_groups:
                group["lr"] = args.lr * scale
            loss = masked_lm_loss(model, inputs, labels)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable.values(), 1.0)
            optimizer.step()
            if step % args.eval_every == 0:
                held_loss, acc = evaluate()
                log.append({"step": step, "train_loss": round(loss.item(), 4),
                            "held_out_loss": round(held_loss, 4), "held_out_accuracy": round(acc, 4)})
                if broad is not None:
                    log[-1]["extra_held_out_accuracy"] = evaluate_broad()
                print(json.dumps(log[-1]), flush=True)
            if finished():
                break

    held_loss, acc = evaluate()
    broad1 = evaluate_broad()
    args.out.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().to(torch.float16).contiguous() for n, p in trainable.items()}
    save_file(tensors, str(args.out / "masked_lm.safetensors"))
    meta = {"steps": step, "schedule_steps": est_steps, "warmup": warmup, "batch": args.batch,
            "length": args.length, "lr": args.lr,
            "freeze_layers": args.freeze_layers, "minutes": None if args.steps else args.minutes,
            "seconds": round(time.time() - started),
            "held_out_loss": round(held_loss, 4), "held_out_accuracy": round(acc, 4),
            "before": {"held_out_loss": round(loss0, 4), "held_out_accuracy": round(acc0, 4)},
            "init": args.init, "extra_train": [p.name for p in args.extra_train],
            "log": log}
    if broad is not None:
        meta["extra_held_out_accuracy"] = {"before": broad0, "after": broad1}
    if args.init == "shipped":  # these weights continue the shipped ones: keep the earlier stages' record
        meta = chain_records(json.loads((OUT_DIR / "masked_lm_training.json").read_text()), meta)
    (args.out / "masked_lm_training.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"final held-out loss {held_loss:.3f} acc {acc:.3f}; wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
