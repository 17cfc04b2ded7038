"""Does a masked LM read both sides of a blank? Fill-mask accuracy with the whole window visible,
with only the words to the left of the blank, and with only the words to its right, over many
held-out positions (notebook 02)."""

from __future__ import annotations

import torch

from bert_workbook.arguments import (
    check_count,
    check_model,
    check_texts,
    check_token_ids,
    check_tokenizer,
)
from bert_workbook.masking import IGNORE_INDEX
from bert_workbook.mlm import logits_at_labels

SIDES = ("both sides", "left only", "right only")


def blank_positions(windows: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One position per window to blank out, drawn from its middle half, so that each side keeps
    at least a quarter of the window as context."""
    check_token_ids(windows, "windows")
    if windows.dim() != 2 or windows.shape[1] < 8:
        raise ValueError(f"windows must be (count, length >= 8) token ids, got {tuple(windows.shape)}")
    length = windows.shape[1]
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(length // 4, 3 * length // 4, (len(windows),), generator=generator)


def one_sided_inputs(windows: torch.Tensor, positions: torch.Tensor, mask_token_id: int, side: str):
    """``(input_ids, attention_mask)``: each window with ``[MASK]`` at its position, and attention
    restricted to one side of it. ``"left only"`` hides every token after the blank;
    ``"right only"`` hides every token before it except ``[CLS]``; ``"both sides"`` hides nothing.
    Hidden tokens are out of attention, so they cannot influence the prediction at all."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    check_count(mask_token_id, "mask_token_id", minimum=0)
    if positions.shape != (len(windows),):
        raise ValueError(f"need one position per window: {len(windows)} windows, positions {tuple(positions.shape)}")
    rows = torch.arange(len(windows))
    inputs = windows.clone()
    inputs[rows, positions] = mask_token_id
    index = torch.arange(windows.shape[1])[None, :]
    if side == "left only":
        attention = index <= positions[:, None]
    elif side == "right only":
        attention = (index >= positions[:, None]) | (index == 0)
    else:
        attention = torch.ones_like(inputs, dtype=torch.bool)
    return inputs, attention.long()


@torch.no_grad()
def correct_by_side(model, windows: torch.Tensor, mask_token_id: int, seed: int = 0,
                    batch_size: int = 16) -> dict[str, torch.Tensor]:
    """For each side of :data:`SIDES`, whether the model's top-1 guess at each window's blank
    (:func:`blank_positions`) is the original token: a 0/1 tensor per side, paired position by
    position, ready for ``stats.compare_examples``. The vocabulary logits come from
    ``mlm.logits_at_labels``: a BERT masked LM projects onto the vocabulary at the blanks only;
    another model's logits cover it at every position, hence the small batches (16 windows of 64
    tokens: 125 MB)."""
    check_model(model)
    check_count(mask_token_id, "mask_token_id", minimum=0)
    check_count(batch_size, "batch_size")
    positions = blank_positions(windows, seed)
    answers = windows[torch.arange(len(windows)), positions]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = {}
    for side in SIDES:
        inputs, attention = one_sided_inputs(windows, positions, mask_token_id, side)
        guesses = []
        for start in range(0, len(windows), batch_size):
            rows = slice(start, start + batch_size)
            blanks = torch.full_like(inputs[rows], IGNORE_INDEX)  # one label per row: its blank
            blanks[torch.arange(len(blanks)), positions[rows]] = answers[rows]
            logits, _ = logits_at_labels(model, inputs[rows].to(device), blanks.to(device),
                                         attention_mask=attention[rows].to(device))
            guesses.append(logits.argmax(-1).cpu())
        correct[side] = (torch.cat(guesses) == answers).float()
    model.train(was_training)
    return correct


@torch.no_grad()
def polarity_score(model, tokenizer, texts: list[str], positive: list[str], negative: list[str]) -> torch.Tensor:
    """For each text with one ``[MASK]``: log P(a word of ``positive``) - log P(a word of
    ``negative``) at the blank, each set's probability summed over its words. Above 0, the model
    leans positive. Words must be single tokens of the vocabulary."""
    check_model(model)
    check_tokenizer(tokenizer)
    check_texts(texts)
    ids = {}
    for name, words in (("positive", positive), ("negative", negative)):
        check_texts(words, name)
        found = tokenizer.convert_tokens_to_ids(list(words))
        missing = [w for w, i in zip(words, found) if i == tokenizer.unk_token_id]
        if not words or missing:
            raise ValueError(f"{name} words must be single tokens of the vocabulary; not: {missing or 'none given'}")
        ids[name] = torch.tensor(found)
    encoded = tokenizer(list(texts), padding=True, return_tensors="pt")
    blanks = encoded["input_ids"] == tokenizer.mask_token_id
    if not (blanks.sum(1) == 1).all():
        raise ValueError("every text needs exactly one [MASK]")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits = model(**{k: v.to(device) for k, v in encoded.items()}).logits[blanks.to(device)].float().cpu()
    model.train(was_training)
    log_p = logits.log_softmax(-1)
    return log_p[:, ids["positive"]].logsumexp(-1) - log_p[:, ids["negative"]].logsumexp(-1)
