"""Training and tokenizer throughput: the measurements behind bench/RESULTS.md.

* ``padding_throughput``: fine-tuning steps of the embedded encoder with a classification head on
  the same examples, batched four ways (fixed padding to 128 and to 512 tokens, the recipe of the
  lecture notes; dynamic padding; dynamic padding with length-grouped batches).
* ``tokenizer_throughput``: the fast (Rust) and slow (Python) WordPiece tokenizers on the same texts.
* ``gpu_training_throughput``: BERT-base training steps on a GPU in fp32, with SDPA attention and
  in bf16 autocast, with model FLOPs utilization (MFU) against the GPU's peak.
"""

from __future__ import annotations

import time

import torch

STRATEGIES = ("max_length 128", "max_length 512", "dynamic", "dynamic + length-grouped")


def tokenized_lengths(texts) -> list[list[int]]:
    """The embedded tokenizer's ids of each text, with special tokens and no truncation."""
    from bert_workbook import assets

    return assets.load_tokenizer("embedded")(list(texts), verbose=False)["input_ids"]


def padded_batches(texts, labels, tokenizer, strategy: str, batch_size: int, seed: int = 0):
    """The training batches of one strategy, in a shuffled order fixed by ``seed``: a list of
    dicts of tensors (input_ids, attention_mask, token_type_ids, labels)."""
    from bert_workbook.training import length_grouped_sampler

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if len(texts) != len(labels) or len(texts) < batch_size:
        raise ValueError("texts and labels must have the same length, at least batch_size")
    generator = torch.Generator().manual_seed(seed)
    if strategy.startswith("max_length"):
        length = int(strategy.split()[1])
        encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=length,
                            return_tensors="pt")
        order = torch.randperm(len(texts), generator=generator)
        groups = [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
        return [{**{k: v[g] for k, v in encoded.items()}, "labels": torch.tensor(labels)[g]}
                for g in groups]
    encoded = tokenizer(list(texts), truncation=True, max_length=512)
    rows = [{**{k: encoded[k][i] for k in encoded}, "labels": labels[i]} for i in range(len(texts))]
    if strategy == "dynamic":
        order = torch.randperm(len(texts), generator=generator).tolist()
    else:
        from datasets import Dataset

        lengths = Dataset.from_dict({"input_ids": encoded["input_ids"]})
        order = list(length_grouped_sampler(lengths, batch_size, generator))
    groups = [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    return [tokenizer.pad([rows[i] for i in g], return_tensors="pt") for g in groups]


def training_steps_per_second(model, batches, steps: int, warmup: int = 2) -> dict:
    """Run ``warmup`` untimed and ``steps`` timed AdamW steps over ``batches`` (cycled); return
    examples/s, real (non-padding) tokens/s and padded positions/s of the timed steps."""
    if steps < 1 or warmup < 0:
        raise ValueError("steps must be positive and warmup non-negative")
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=device.type in ("cpu", "cuda"))
    model.train()
    examples = tokens = positions = 0
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = {k: v.to(device) for k, v in batches[step % len(batches)].items()}
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            examples += len(batch["labels"])
            tokens += int(batch["attention_mask"].sum())
            positions += batch["attention_mask"].numel()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    return {"examples/s": examples / seconds, "tokens/s": tokens / seconds,
            "positions/s": positions / seconds, "padding": 1 - tokens / positions,
            "seconds": seconds, "steps": steps}


def padding_throughput(texts, labels, *, steps: int = 12, batch_size: int = 16,
                       strategies=STRATEGIES, device: str = "cpu", seed: int = 0):
    """Fine-tuning throughput of the embedded encoder (a fresh classification head, the same
    starting weights every time) on the same examples, for each batching strategy; a DataFrame
    with the ratio of each strategy's examples/s to the first strategy's."""
    import pandas as pd

    from bert_workbook import assets, env

    tokenizer = assets.load_tokenizer("embedded")
    rows = []
    for strategy in strategies:
        batches = padded_batches(texts, labels, tokenizer, strategy, batch_size, seed)
        # time a random sample of the batches: a length-grouped sampler puts its longest first
        pick = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed))
        batches = [batches[i] for i in pick[: steps + 2]]
        torch.manual_seed(seed)
        model = assets.load_classifier(["negative", "positive"], name="embedded").to(device)
        rows.append({"strategy": strategy, **training_steps_per_second(model, batches, steps)})
        del model
        env.release_memory()
    table = pd.DataFrame(rows).set_index("strategy")
    table["speed-up"] = table["examples/s"] / table["examples/s"].iloc[0]
    return table


def tokenizer_throughput(texts, repeats: int = 3) -> dict:
    """Texts per second of the fast and the slow WordPiece tokenizer on the same texts."""
    from bert_workbook import assets
    from bert_workbook.timing import items_per_second

    fast, slow = assets.load_tokenizer("embedded"), assets.load_slow_tokenizer("embedded")
    texts = list(texts)
    if fast(texts[:50])["input_ids"] != slow(texts[:50])["input_ids"]:
        raise AssertionError("the fast and slow tokenizers disagree: the comparison would be unfair")
    result = {"fast texts/s": items_per_second(lambda t: fast(list(t)), texts, repeats),
              "slow texts/s": items_per_second(lambda t: slow(list(t)), texts, max(1, repeats - 2))}
    result["ratio"] = result["fast texts/s"] / result["slow texts/s"]
    return result


# Dense peak throughput (FLOP/s) of tensor cores in bf16, from the vendors' data sheets.
GPU_BF16_PEAK = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12,
                 "H100 NVL": 835e12, "A100": 312e12, "L4": 121e12, "A10G": 125e12, "T4": 65e12}


def gpu_peak_flops(name: str) -> float | None:
    """The bf16 dense peak of a GPU named ``name`` (``torch.cuda.get_device_name``), or None."""
    for key, peak in GPU_BF16_PEAK.items():
        if all(part in name for part in key.split()):
            return peak
    if "H100" in name:  # an H100 we cannot place: assume the SXM part
        return GPU_BF16_PEAK["H100 SXM"]
    return None


def bert_training_flops_per_token(config, seq_len: int) -> float:
    """FLOPs of one training step per token of a BERT encoder: 6 x the parameters that multiply
    (every layer's matrices and the pooler; embedding lookups cost nothing) plus attention's two
    matrix products, 12 x layers x seq_len x hidden (forward and twice backward)."""
    h, layers, ffn = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_layer = 4 * h * h + 2 * h * ffn  # Q, K, V, output; the two feed-forward matrices
    return 6 * (layers * per_layer + h * h) + 12 * layers * seq_len * h


def gpu_training_throughput(batch_size: int = 32, seq_len: int = 512, steps: int = 20):
    """BERT-base (random weights) training steps on the GPU in four settings; a DataFrame with
    tokens/s and MFU against the bf16 peak. Returns None without a CUDA GPU."""
    if not torch.cuda.is_available():
        return None
    import pandas as pd
    from transformers import BertConfig, BertForSequenceClassification

    name = torch.cuda.get_device_name(0)
    peak = gpu_peak_flops(name)
    ids = torch.randint(1000, 30000, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    batches = [{"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.zeros(batch_size, dtype=torch.long)}]
    settings = [("fp32, eager attention", "eager", None, False),
                ("fp32, SDPA attention", "sdpa", None, False),
                ("bf16 autocast, SDPA", "sdpa", torch.bfloat16, False),
                ("bf16 autocast, SDPA, torch.compile", "sdpa", torch.bfloat16, True)]
    rows = []
    for label, attention, dtype, compiled in settings:
        torch.manual_seed(0)
        config = BertConfig(attn_implementation=attention)
        model = BertForSequenceClassification(config).cuda()
        flops = bert_training_flops_per_token(config, seq_len)
        try:
            runner = torch.compile(model) if compiled else model
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                result = training_steps_per_second(runner, batches, steps, warmup=3)
            result["MFU"] = result["tokens/s"] * flops / peak if peak else float("nan")
        except Exception as error:  # report the failure in the table rather than lose the rest
            result = {"error": f"{type(error).__name__}: {error}"[:120]}
        rows.append({"setting": label, **result})
        del model
        torch.cuda.empty_cache()
    table = pd.DataFrame(rows).set_index("setting")
    table.attrs.update(gpu=name, peak=peak, batch_size=batch_size, seq_len=seq_len)
    return table
