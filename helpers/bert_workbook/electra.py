"""Replaced-token detection (ELECTRA): a generator fills masked positions with plausible tokens,
and a discriminator learns, at *every* position, whether the token there is the original.

Here the generator is the course's masked LM (``assets.load_masked_lm``), kept frozen, and the
discriminator is the embedded encoder with a two-label token head. ELECTRA trains both together
from scratch, corrupting each batch as it goes; here a pool of windows is corrupted once before
training (the generator is frozen, so nothing is lost when each window is seen once), which lets
the generator leave memory before the discriminator trains.
"""

from __future__ import annotations

import torch

from bert_workbook import env
from bert_workbook.arguments import (
    check_count,
    check_model,
    check_probability,
    check_token_ids,
    check_tokenizer,
)
from bert_workbook.masking import IGNORE_INDEX, mask_tokens
from bert_workbook.mlm import logits_at_labels, special_tokens_mask

ORIGINAL, REPLACED = 0, 1
LABEL_NAMES = ["original", "replaced"]


def signal_fraction(labels: torch.Tensor, special: torch.Tensor) -> float:
    """The share of non-special positions whose label is not -100: the positions from which a
    training step learns anything."""
    if labels.shape != special.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and special {tuple(special.shape)} differ in shape")
    real = ~special.bool()
    if not real.any():
        raise ValueError("every position is special: there is nothing to learn from")
    return float(((labels != IGNORE_INDEX) & real).sum() / real.sum())


@torch.no_grad()
def corrupt_with_generator(generator_model, input_ids: torch.Tensor, tokenizer, *,
                           mask_probability: float = 0.15, rng: torch.Generator | None = None,
                           temperature: float = 1.0, chunk_size: int = 16
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """ELECTRA's corruption: mask ``mask_probability`` of the non-special positions (all with
    [MASK]), let the generator *sample* a token at each, and put the samples in the original
    text. Returns ``(corrupted, labels)``: labels are 1 where the token differs from the
    original, 0 where it is the original (a sample equal to the original counts as original,
    as in ELECTRA) and -100 on special tokens. The generator runs on ``chunk_size`` rows at a
    time: its logits take ``30,522 x 4`` bytes per masked position."""
    check_model(generator_model, "generator_model")
    check_token_ids(input_ids)
    check_tokenizer(tokenizer)
    check_probability(mask_probability, "mask_probability")
    check_count(chunk_size, "chunk_size")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    rng = rng or torch.Generator().manual_seed(0)
    special = special_tokens_mask(input_ids, tokenizer)
    masked, selected_labels = mask_tokens(input_ids, special, tokenizer.vocab_size,
                                          tokenizer.mask_token_id, mlm_probability=mask_probability,
                                          generator=rng, mask_replace_prob=1.0,
                                          random_replace_prob=0.0)
    selected = selected_labels != IGNORE_INDEX
    corrupted = input_ids.clone()
    device = next(generator_model.parameters()).device
    for start in range(0, len(input_ids), chunk_size):  # vocabulary-wide logits: keep them small
        rows = slice(start, start + chunk_size)
        if not selected[rows].any():
            continue
        logits, _ = logits_at_labels(generator_model, masked[rows].to(device),
                                     selected_labels[rows].to(device))
        probabilities = (logits.float() / temperature).softmax(dim=-1).cpu()
        corrupted[rows][selected[rows]] = torch.multinomial(probabilities, 1, generator=rng).squeeze(1)
    labels = (corrupted != input_ids).long()
    labels[special.bool()] = IGNORE_INDEX
    return corrupted, labels


def train_discriminator(discriminator, corrupted: torch.Tensor, labels: torch.Tensor, *,
                        steps: int, batch_size: int = 16, lr: float = 1e-4,
                        rng: torch.Generator | None = None, progress: bool = True) -> list[float]:
    """Train ``discriminator`` (a two-label token classifier) for ``steps`` steps on batches of
    corrupted windows and their labels (from :func:`corrupt_with_generator`), taken in a random
    order without repeats until the pool runs out; return the loss of every step (cross-entropy
    over all non-special positions)."""
    from tqdm.auto import tqdm

    check_model(discriminator, "discriminator")
    check_token_ids(corrupted, "corrupted")
    check_token_ids(labels, "labels")
    check_count(steps, "steps")
    check_count(batch_size, "batch_size")
    if corrupted.dim() != 2 or corrupted.shape != labels.shape:
        raise ValueError(f"corrupted {tuple(corrupted.shape)} and labels {tuple(labels.shape)} must be "
                         "2-d tensors of the same shape")
    if len(corrupted) < batch_size:
        raise ValueError(f"the pool holds {len(corrupted)} windows, fewer than batch_size={batch_size}")
    steps = env.training_steps(steps)
    rng = rng or torch.Generator().manual_seed(0)
    device = next(discriminator.parameters()).device
    optimizer = torch.optim.AdamW(discriminator.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    per_pass = len(corrupted) // batch_size
    order = torch.randperm(len(corrupted), generator=rng)
    losses = []
    discriminator.train()
    for step in tqdm(range(steps), desc="discriminator steps", disable=not progress):
        if step and step % per_pass == 0:  # the pool is used up: start a new random pass
            order = torch.randperm(len(corrupted), generator=rng)
        rows = order[(step % per_pass) * batch_size:][:batch_size]
        loss = discriminator(input_ids=corrupted[rows].to(device), labels=labels[rows].to(device)).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(discriminator.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    discriminator.zero_grad(set_to_none=True)
    discriminator.eval()
    return losses


@torch.no_grad()
def replaced_probability(discriminator, input_ids: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The discriminator's probability that each token was replaced, shaped like ``input_ids``."""
    check_model(discriminator, "discriminator")
    check_token_ids(input_ids)
    check_count(batch_size, "batch_size")
    device = next(discriminator.parameters()).device
    discriminator.eval()
    parts = []
    for start in range(0, len(input_ids), batch_size):
        logits = discriminator(input_ids=input_ids[start:start + batch_size].to(device)).logits
        parts.append(logits.float().softmax(dim=-1)[..., REPLACED].cpu())
    return torch.cat(parts)
