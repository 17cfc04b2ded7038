"""Masked language modeling inputs: BERT's 15% selection and 80/10/10 corruption, by hand."""

from __future__ import annotations

import torch

from bert_workbook.arguments import (
    check_count,
    check_probability,
    check_token_ids,
    check_tokenizer,
)

IGNORE_INDEX = -100  # the label cross-entropy skips: positions the loss does not see
MASK_STATUSES = ("not selected", "[MASK]", "random", "kept")  # what masking did to a token


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    vocab_size: int,
    mask_token_id: int,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    random_token_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt a batch for masked-language-model training; return ``(inputs, labels)``.

    Each position that is not special (``special_tokens_mask`` is 1 on [CLS], [SEP] and padding)
    is *selected* with probability ``mlm_probability``. A selected token becomes [MASK] with
    probability ``mask_replace_prob``, a random token with ``random_replace_prob``, and stays
    unchanged otherwise. ``labels`` holds the original id at selected positions and -100
    elsewhere. Random tokens are drawn uniformly from ``random_token_ids`` (default: the whole
    vocabulary, as in BERT). The input tensors are not modified.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype != torch.long:
        raise TypeError("input_ids must be a torch.long tensor")
    if not isinstance(special_tokens_mask, torch.Tensor):
        raise TypeError("special_tokens_mask must be a tensor")
    if special_tokens_mask.shape != input_ids.shape:
        raise ValueError(
            f"special_tokens_mask has shape {tuple(special_tokens_mask.shape)}, "
            f"input_ids has {tuple(input_ids.shape)}: they must match"
        )
    check_count(vocab_size, "vocab_size")
    check_count(mask_token_id, "mask_token_id", minimum=0)  # the tokenizer's mask_token_id
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id {mask_token_id} is outside the vocabulary [0, {vocab_size})")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(f"input_ids must lie in [0, {vocab_size})")
    for name, value in [("mlm_probability", mlm_probability), ("mask_replace_prob", mask_replace_prob),
                        ("random_replace_prob", random_replace_prob)]:
        check_probability(value, name)
    if mask_replace_prob + random_replace_prob > 1 + 1e-9:
        raise ValueError("mask_replace_prob + random_replace_prob must not exceed 1")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator (or None)")
    if random_token_ids is None:
        random_token_ids = torch.arange(vocab_size)
    else:
        check_token_ids(random_token_ids, "random_token_ids")
        if random_token_ids.numel() == 0:
            raise ValueError("random_token_ids is empty")
        if random_token_ids.min() < 0 or random_token_ids.max() >= vocab_size:
            raise ValueError(f"random_token_ids must lie in the vocabulary [0, {vocab_size})")

    special = special_tokens_mask.bool()
    draw = torch.rand(input_ids.shape, generator=generator)
    selected = (draw < mlm_probability) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    action = torch.rand(input_ids.shape, generator=generator)
    to_mask = selected & (action < mask_replace_prob)
    to_random = selected & (action >= mask_replace_prob) & (action < mask_replace_prob + random_replace_prob)
    picks = torch.randint(len(random_token_ids), input_ids.shape, generator=generator)

    inputs = input_ids.clone()
    inputs[to_mask] = mask_token_id
    inputs[to_random] = random_token_ids[picks][to_random]
    return inputs, labels


def corruption_status(original: torch.Tensor, corrupted: torch.Tensor, labels: torch.Tensor,
                      mask_token_id: int) -> torch.Tensor:
    """Per position, an index into ``MASK_STATUSES``: what masking did to that token.

    Selected tokens (label != -100) became [MASK], became another token (random), or stayed
    unchanged (kept). A random draw that happens to pick the original token counts as kept: from
    the outside the two are indistinguishable (with BERT's vocabulary, about once in 30,000
    random draws).
    """
    if not original.shape == corrupted.shape == labels.shape:
        raise ValueError("original, corrupted and labels must share a shape")
    selected = labels != IGNORE_INDEX
    status = torch.full_like(original, MASK_STATUSES.index("random"))
    status[selected & (corrupted == original)] = MASK_STATUSES.index("kept")
    status[selected & (corrupted == mask_token_id)] = MASK_STATUSES.index("[MASK]")
    status[~selected] = MASK_STATUSES.index("not selected")
    return status


def corruption_counts(
    original: torch.Tensor,
    corrupted: torch.Tensor,
    labels: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    mask_token_id: int,
) -> dict[str, int]:
    """Count eligible and selected positions, and what happened to the selected ones
    (``mask``, ``random``, ``kept``: see :func:`corruption_status`)."""
    if special_tokens_mask.shape != original.shape:
        raise ValueError("original, corrupted, labels and special_tokens_mask must share a shape")
    status = corruption_status(original, corrupted, labels, mask_token_id)
    counts = torch.bincount(status.flatten(), minlength=len(MASK_STATUSES)).tolist()
    _, mask, random_, kept = counts
    return {
        "eligible": int((~special_tokens_mask.bool()).sum()),
        "selected": mask + random_ + kept,
        "mask": mask,
        "random": random_,
        "kept": kept,
    }


def binomial_bound(p: float, n: int, sigmas: float = 4.5) -> float:
    """Half-width of the exact central interval that holds the share of successes in ``n`` draws
    of probability ``p`` as often as ``sigmas`` standard deviations hold a normal variable
    (scipy's binomial quantiles: no normal approximation, so right for small ``n`` too)."""
    from scipy.stats import binom, norm

    check_count(n, "n")
    check_probability(p, "p")
    low, high = binom.interval(1 - 2 * norm.sf(sigmas), int(n), float(p))
    return float(max(p - low / n, high / n - p))


def masked_rows(tokenizer, text: str, mlm_probability: float = 0.15, seed: int = 0,
                mask_fn=mask_tokens) -> list[dict]:
    """Mask one sentence and describe each token: what it was, what the model sees, and why.

    ``status`` is one of ``MASK_STATUSES``; ``label`` is the id the loss must predict, or -100.
    Special tokens are never selected.
    """
    check_tokenizer(tokenizer)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    encoded = tokenizer(text, return_special_tokens_mask=True, return_tensors="pt")
    ids = encoded["input_ids"]
    inputs, labels = mask_fn(ids, encoded["special_tokens_mask"], len(tokenizer),
                             tokenizer.mask_token_id, mlm_probability,
                             torch.Generator().manual_seed(seed))
    statuses = corruption_status(ids, inputs, labels, tokenizer.mask_token_id)[0].tolist()
    return [
        {
            "token": tokenizer.convert_ids_to_tokens(original),
            "model sees": tokenizer.convert_ids_to_tokens(shown),
            "status": MASK_STATUSES[status],
            "label": label,
        }
        for original, shown, label, status in zip(
            ids[0].tolist(), inputs[0].tolist(), labels[0].tolist(), statuses
        )
    ]


def split_word_share(selected: torch.Tensor, word_ids: torch.Tensor) -> tuple[float, int]:
    """Among words of two or more WordPiece tokens with at least one token selected, the share
    whose tokens were only *partly* selected, and how many such words there were.

    ``word_ids`` gives each position's word index (-1 for special tokens and padding), as
    ``BatchEncoding.word_ids()`` does with ``None`` replaced by -1.
    """
    if not isinstance(selected, torch.Tensor):
        raise TypeError(f"selected must be a tensor (labels != -100), got {type(selected).__name__}")
    if not isinstance(word_ids, torch.Tensor):
        raise TypeError("word_ids must be a tensor with -1 where encoding.word_ids() says None, e.g. "
                        "torch.tensor([[-1 if w is None else w for w in encoding.word_ids()]])")
    if selected.shape != word_ids.shape:
        raise ValueError("selected and word_ids must share a shape")
    partial = touched = 0
    for row_selected, row_words in zip(selected.bool().tolist(), word_ids.tolist()):
        pieces: dict[int, list[bool]] = {}
        for is_selected, word in zip(row_selected, row_words):
            if word >= 0:
                pieces.setdefault(word, []).append(is_selected)
        for flags in pieces.values():
            if len(flags) > 1 and any(flags):
                touched += 1
                partial += not all(flags)
    return (partial / touched if touched else float("nan")), touched
