"""Masked language models: corpus windows, the masked-LM loss, fill-mask, training and evaluation.

Works with the embedded masked-LM model (``assets.load_masked_lm``) and with any Hugging Face
``AutoModelForMaskedLM``. For BERT-style models the vocabulary projection runs only at the
positions that carry a label, which makes CPU training several times faster.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bert_workbook import env
from bert_workbook.arguments import (
    check_count,
    check_model,
    check_same_shape,
    check_texts,
    check_token_ids,
    check_tokenizer,
)
from bert_workbook.masking import IGNORE_INDEX, MASK_STATUSES, corruption_status, mask_tokens


def token_windows(tokenizer, texts: Sequence[str], length: int) -> torch.Tensor:
    """Concatenate the texts' token ids ([SEP] after each text) and cut them into windows
    ``[CLS] ... [SEP]`` of exactly ``length`` tokens; the tail that does not fill one is dropped
    (texts that do not fill even one window are a ValueError)."""
    check_tokenizer(tokenizer)
    check_texts(texts)
    check_count(length, "length", minimum=3)
    ids: list[int] = []
    for start in range(0, len(texts), 1000):
        for row in tokenizer(list(texts[start:start + 1000]), add_special_tokens=False,
                             verbose=False)["input_ids"]:
            ids.extend(row + [tokenizer.sep_token_id])
    body = length - 2
    n = len(ids) // body
    if n == 0:  # an empty tensor of windows would only fail later, far from the cause
        raise ValueError(f"texts are shorter than one window: {len(ids)} tokens in all ([SEP]s included), and a "
                         f"window of length {length} needs {body} besides [CLS] and [SEP]; pass more text "
                         "or a smaller length")
    chunks = torch.tensor(ids[: n * body], dtype=torch.long).view(n, body)
    cls = torch.full((n, 1), tokenizer.cls_token_id)
    sep = torch.full((n, 1), tokenizer.sep_token_id)
    return torch.cat([cls, chunks, sep], dim=1)


def token_counts(tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """How often each vocabulary id occurs in ``texts`` (no special tokens added): a
    ``(vocab_size,)`` tensor of counts."""
    check_tokenizer(tokenizer)
    check_texts(texts)
    counts = torch.zeros(tokenizer.vocab_size, dtype=torch.long)
    for start in range(0, len(texts), 1000):
        rows = tokenizer(list(texts[start:start + 1000]), add_special_tokens=False, verbose=False)["input_ids"]
        ids = torch.tensor([i for row in rows for i in row], dtype=torch.long)
        counts += torch.bincount(ids, minlength=len(counts))  # one count per chunk, not per text
    return counts


def most_frequent_ids(counts: torch.Tensor, k: int, exclude: Sequence[int] = ()) -> torch.Tensor:
    """The ``k`` ids with the highest ``counts``, most frequent first, skipping ``exclude``."""
    if not isinstance(counts, torch.Tensor) or counts.dim() != 1:
        raise TypeError("counts must be a 1-d tensor of counts per id (see token_counts)")
    if not isinstance(k, int) or not 1 <= k <= len(counts):
        raise ValueError(f"k must be an int in [1, {len(counts)}], got {k!r}")
    outside = [int(i) for i in exclude if not 0 <= i < len(counts)]
    if outside:
        raise ValueError(f"exclude holds ids outside [0, {len(counts)}): {outside[:5]}")
    counts = counts.clone().double()
    counts[list(exclude)] = -1
    return torch.topk(counts, k).indices


def special_tokens_mask(input_ids: torch.Tensor, tokenizer) -> torch.Tensor:
    """1 where ``input_ids`` holds one of the tokenizer's special tokens ([CLS], [SEP], [PAD]...)."""
    check_token_ids(input_ids)
    check_tokenizer(tokenizer)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=input_ids.dtype)
    return torch.isin(input_ids, special).long()


def train_only_top(model, layers: int = 1) -> list[str]:
    """Freeze a BERT masked LM except its top ``layers`` encoder layers and its masked-LM head
    (the transform and the per-token output bias; the output weights are tied to the frozen word
    embeddings). Returns the names of the parameters left trainable."""
    _check_bert_masked_lm(model, layers, lowest=0)
    total = len(model.bert.encoder.layer)
    trainable = tuple(f"bert.encoder.layer.{i}." for i in range(total - layers, total))
    names = []
    for name, parameter in model.named_parameters():
        keep = name.startswith(trainable) or (name.startswith("cls.") and "decoder.weight" not in name)
        parameter.requires_grad_(keep)
        if keep:
            names.append(name)
    return names


def logits_at_labels(model, inputs: torch.Tensor, labels: torch.Tensor,
                     attention_mask: torch.Tensor | None = None):
    """Vocabulary logits at the positions whose label is not -100, and those labels."""
    check_model(model)
    check_token_ids(inputs, "inputs")
    check_token_ids(labels, "labels")
    check_same_shape("labels", labels, "inputs", inputs)
    if attention_mask is not None:
        check_same_shape("attention_mask", attention_mask, "inputs", inputs)
    where = labels != IGNORE_INDEX
    if hasattr(model, "bert") and hasattr(model, "cls"):  # BERT: project only where needed
        hidden = model.bert(input_ids=inputs, attention_mask=attention_mask).last_hidden_state
        return model.cls(hidden[where]), labels[where]
    return model(input_ids=inputs, attention_mask=attention_mask).logits[where], labels[where]


def _check_bert_masked_lm(model, layers: int, lowest: int = 1) -> None:
    if not (hasattr(model, "bert") and hasattr(model, "cls")):
        raise TypeError("model must be a BERT masked LM (with .bert and .cls), e.g. assets.load_masked_lm()")
    total = len(model.bert.encoder.layer)
    if not isinstance(layers, int) or isinstance(layers, bool) or not lowest <= layers <= total:
        raise ValueError(f"layers must be an int in [{lowest}, {total}], got {layers!r}")


@torch.no_grad()
def hidden_below_top(model, inputs: torch.Tensor, layers: int = 1, batch_size: int = 32) -> torch.Tensor:
    """The hidden states of ``inputs`` (windows without padding) after every encoder layer of a
    BERT masked LM but the top ``layers``, in eval mode. While only the top trains
    (:func:`train_only_top`), they stay the same: compute them once and evaluate every trained
    copy with :func:`top_logits_at_labels`."""
    _check_bert_masked_lm(model, layers)
    model.eval()
    device = next(model.parameters()).device
    below = len(model.bert.encoder.layer) - layers
    return torch.cat([model.bert(input_ids=chunk.to(device), output_hidden_states=True).hidden_states[below]
                      for chunk in inputs.split(batch_size)])


@torch.no_grad()
def top_logits_at_labels(model, hidden: torch.Tensor, labels: torch.Tensor, layers: int = 1):
    """:func:`logits_at_labels` from :func:`hidden_below_top`'s states: only the top ``layers``
    encoder layers and the masked-LM head run (eval mode)."""
    _check_bert_masked_lm(model, layers)
    if hidden.shape[:2] != labels.shape:
        raise ValueError(f"hidden states {tuple(hidden.shape)} do not match labels {tuple(labels.shape)}")
    model.eval()
    for layer in model.bert.encoder.layer[-layers:]:
        hidden = layer(hidden)  # windows without padding: no attention mask
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    where = labels.to(hidden.device) != IGNORE_INDEX
    return model.cls(hidden[where]), labels.to(hidden.device)[where]


def masked_lm_loss(model, inputs: torch.Tensor, labels: torch.Tensor, loss_fn=None) -> torch.Tensor:
    """Mean cross-entropy over the labelled positions (at least one): the masked-LM loss.
    ``loss_fn(logits, targets)`` replaces cross-entropy (e.g. focal loss), on the labelled
    positions only."""
    logits, targets = logits_at_labels(model, inputs, labels)
    if len(targets) == 0:  # cross-entropy would return NaN, the mean over no positions
        raise ValueError("labels select no position (every label is -100), so the loss is undefined: "
                         "select at least one token")
    return (loss_fn or torch.nn.functional.cross_entropy)(logits, targets)


@torch.no_grad()
def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each [MASK] in ``text``, the ``top_k`` most probable tokens and their probabilities."""
    check_model(model)
    check_tokenizer(tokenizer)
    if not isinstance(text, str):
        raise TypeError(f"text must be one string, got {type(text).__name__}: call fill_mask once per text")
    if tokenizer.mask_token not in text:
        raise ValueError(f"text has no {tokenizer.mask_token} token: {text!r}")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    device = next(model.parameters()).device
    ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
    labels = torch.where(ids == tokenizer.mask_token_id, ids, torch.full_like(ids, IGNORE_INDEX))
    model.eval()
    logits, _ = logits_at_labels(model, ids, labels)
    probs = logits.float().softmax(dim=-1)
    top = probs.topk(top_k, dim=-1)
    return [
        [(tokenizer.convert_ids_to_tokens(int(i)), round(float(p), 4)) for p, i in zip(ps, is_)]
        for ps, is_ in zip(top.values.cpu(), top.indices.cpu())
    ]


@torch.no_grad()
def accuracy_by_status(model, original: torch.Tensor, corrupted: torch.Tensor,
                       labels: torch.Tensor, mask_token_id: int,
                       batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Top-1 accuracy and loss at selected positions, split by what masking did to them
    ([MASK], random, kept) and over all selected positions."""
    check_model(model)
    if not original.shape == corrupted.shape == labels.shape:
        raise ValueError("original, corrupted and labels must share a shape")
    check_count(batch_size, "batch_size")
    device = next(model.parameters()).device
    model.eval()
    hits, losses, statuses = [], [], []
    for start in range(0, len(original), batch_size):
        part = slice(start, start + batch_size)
        logits, targets = logits_at_labels(model, corrupted[part].to(device), labels[part].to(device))
        hits.append((logits.argmax(-1) == targets).cpu())
        losses.append(torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none").cpu())
        status = corruption_status(original[part], corrupted[part], labels[part], mask_token_id)
        statuses.append(status[labels[part] != IGNORE_INDEX])
    hits, losses, statuses = torch.cat(hits), torch.cat(losses), torch.cat(statuses)
    report = {}
    for name in (*MASK_STATUSES[1:], "all selected"):
        keep = statuses >= 0 if name == "all selected" else statuses == MASK_STATUSES.index(name)
        count = int(keep.sum())
        report[name] = {
            "positions": count,
            "accuracy": float(hits[keep].float().mean()) if count else float("nan"),
            "loss": float(losses[keep].mean()) if count else float("nan"),
        }
    return report


def train_masked_lm(model, windows: torch.Tensor, tokenizer, steps: int, batch_size: int = 16,
                    lr: float = 1e-4, generator: torch.Generator | None = None,
                    mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
                    progress: bool = True, loss_fn=None) -> list[float]:
    """Train ``model`` for ``steps`` steps of masked-LM on random batches of ``windows``, masking
    each batch afresh (dynamic masking); return the training loss of every step. ``loss_fn``
    replaces cross-entropy at the masked positions (see :func:`masked_lm_loss`).

    Only parameters with ``requires_grad`` are trained (AdamW, linear warm-up over the first 10%
    of steps, then constant).
    """
    from tqdm.auto import tqdm

    check_model(model)
    check_token_ids(windows, "windows")
    check_tokenizer(tokenizer)
    check_count(steps, "steps")
    check_count(batch_size, "batch_size")
    steps = env.training_steps(steps)
    if windows.dim() != 2 or len(windows) < batch_size:
        raise ValueError(f"windows must be a 2-d tensor with at least batch_size={batch_size} rows")
    generator = generator or torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    special = special_tokens_mask(windows, tokenizer)
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc="masked-LM steps", disable=not progress):
        rows = torch.randint(len(windows), (batch_size,), generator=generator)
        inputs, labels = mask_tokens(windows[rows], special[rows], tokenizer.vocab_size,
                                     tokenizer.mask_token_id, generator=generator,
                                     mask_replace_prob=mask_replace_prob,
                                     random_replace_prob=random_replace_prob)
        loss = masked_lm_loss(model, inputs.to(device), labels.to(device), loss_fn)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.zero_grad(set_to_none=True)  # gradients are not needed after training: free them
    model.eval()
    return losses
