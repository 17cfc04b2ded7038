"""Notebook 02's exercises: BERT's masking rule (15%, then 80/10/10), tested statistically, and the masked-LM loss."""

from __future__ import annotations

import math
from functools import lru_cache

from bert_workbook import masking as _masking
from bert_workbook.exercises.core import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    call_or_verdict,
    named_mistake,
    nudge,
)
from bert_workbook.masking import IGNORE_INDEX

MASKING_SIGMAS = 4.5  # a correct implementation fails a bound about once in 150,000 runs


def masking_batch(min_tokens: int = 200_000, length: int = 128):
    """Real IMDB test reviews as padded batches: (input_ids, special_tokens_mask) with at least
    ``min_tokens`` non-special tokens. Fresh copies each call: a function that changes its input
    in place cannot corrupt what the next caller gets."""
    ids, special = _masking_batch(min_tokens, length)
    return ids.clone(), special.clone()


@lru_cache(maxsize=1)
def _masking_batch(min_tokens: int, length: int):
    from bert_workbook.assets import load_tokenizer
    from bert_workbook.data import load_course_dataset

    tokenizer = load_tokenizer("embedded")
    texts = load_course_dataset("imdb")["test"]["text"]
    encoded = tokenizer(texts[:2500], truncation=True, max_length=length, padding="max_length",
                        return_special_tokens_mask=True, return_tensors="pt")
    ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
    eligible = (special == 0).sum(dim=1).cumsum(0)
    rows = int((eligible < min_tokens).sum()) + 1
    if rows > len(ids):
        raise RuntimeError(f"not enough text for {min_tokens} tokens")
    return ids[:rows], special[:rows]


MASK_TOKENS_NAME = "Exercise (mask_tokens)"
HINT_MASK_TOKENS = nudge("ex02.mask_tokens")


def _masking_output_verdict(out, ids) -> CheckResult | None:
    """A failing verdict unless ``out`` is ``(inputs, labels)``: two integer tensors shaped like ``ids``."""
    import torch

    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        return CheckResult(MASK_TOKENS_NAME, False, f"expected a pair (inputs, labels), got {type(out).__name__}"
                           + (f" of {len(out)} items." if isinstance(out, (tuple, list)) else "."), HINT_MASK_TOKENS)
    for name, tensor in zip(("inputs", "labels"), out):
        if not isinstance(tensor, torch.Tensor):
            return CheckResult(MASK_TOKENS_NAME, False, f"{name} must be a torch tensor, got "
                               f"{type(tensor).__name__}.", HINT_MASK_TOKENS)
        if tensor.shape != ids.shape:
            return CheckResult(MASK_TOKENS_NAME, False, f"{name} has shape {tuple(tensor.shape)}; it must have "
                               f"the shape of input_ids, {tuple(ids.shape)}.", HINT_MASK_TOKENS)
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
            return CheckResult(MASK_TOKENS_NAME, False, f"{name} must hold integer token ids (as input_ids "
                               f"does, {ids.dtype}), got {tensor.dtype}.", HINT_MASK_TOKENS)
    return None


def check_mask_tokens(fn, seed: int = 0) -> CheckResult:
    """Run ``fn`` on >= 200,000 real tokens and test BERT's masking rule statistically.

    ``fn(input_ids, special_tokens_mask, vocab_size, mask_token_id, mlm_probability, generator)``
    must return ``(inputs, labels)``. Each share must lie within ``MASKING_SIGMAS`` binomial
    standard deviations of its target. A failure names the first problem found, in the order:
    what it returns, special tokens, labels, tokens outside the selection, the generator, the
    arguments, the shares, the random tokens, bad arguments rejected.
    """
    import torch

    from bert_workbook.masking import binomial_bound, corruption_counts

    ids, special = masking_batch()
    vocab_size, mask_id = 30522, 103

    def run(s):
        out, failed = call_or_verdict(MASK_TOKENS_NAME, fn, ids, special, vocab_size, mask_id, 0.15,
                                      torch.Generator().manual_seed(s))
        return out, failed if failed is not None else _masking_output_verdict(out, ids)

    out, failed = run(seed)
    if failed is not None:
        return failed
    inputs, labels = out
    selected = labels != IGNORE_INDEX
    counts = corruption_counts(ids, inputs, labels, special, mask_id)
    n, m = counts["eligible"], max(counts["selected"], 1)
    lines, off = [], []
    for name, share, target, total in (
        ("selected", counts["selected"] / n, 0.15, n),
        ("[MASK] among selected", counts["mask"] / m, 0.8, m),
        ("random among selected", counts["random"] / m, 0.1, m),
        ("kept among selected", counts["kept"] / m, 0.1, m),
    ):
        bound = binomial_bound(target, total, MASKING_SIGMAS)
        ok = abs(share - target) <= bound
        lines.append(f"{name}: {share:.4f} (target {target} ± {bound:.4f}) {'ok' if ok else 'OUT'}")
        if not ok:
            off.append(f"{name} is {share:.4f}, outside {target} ± {bound:.4f}")
    randoms = inputs[selected & (inputs != ids) & (inputs != mask_id)]
    spread = True
    if len(randoms):
        distinct = len(torch.unique(randoms))
        expected = vocab_size * (1 - math.exp(-len(randoms) / vocab_size))
        lines.append(f"distinct random tokens: {distinct} of {len(randoms)} "
                     f"(uniform over the vocabulary: about {expected:.0f})")
        spread = distinct >= 0.9 * expected
    header = f"{n:,} real tokens ({MASKING_SIGMAS}-sigma binomial bounds):\n  " + "\n  ".join(lines)
    problem = _masking_problem(fn, seed, run, ids, special, inputs, labels, off, spread)
    if problem:
        return CheckResult(MASK_TOKENS_NAME, False, f"{problem}.\n{header}", HINT_MASK_TOKENS)
    return CheckResult(MASK_TOKENS_NAME, True, header)


def _masking_problem(fn, seed, run, ids, special, inputs, labels, off, spread) -> str | None:
    """The first problem of a masking function whose output on the real batch was ``(inputs,
    labels)``, or None: each named mistake has its own test, in an order where a mistake does
    not trip an earlier test."""
    import torch

    selected = labels != IGNORE_INDEX
    if (selected & special.bool()).any():
        return ("special tokens or padding were selected (their label is not -100): only tokens whose "
                "special_tokens_mask is 0 may be selected")
    if (labels[selected] != ids[selected]).any():
        return ("the labels at the selected positions must be the original token ids (not the corrupted "
                "ones), and -100 everywhere else")
    if (inputs[~selected] != ids[~selected]).any():
        return ("tokens that were not selected were changed: the 80/10/10 rule applies to the selected "
                "tokens only, every other token stays as it was")
    again, _ = run(seed)
    if not (isinstance(again, (tuple, list)) and len(again) == 2 and all(isinstance(t, torch.Tensor) for t in again)
            and torch.equal(again[0], inputs) and torch.equal(again[1], labels)):
        return ("the same generator seed gave a different result: draw every random number from the "
                "generator you are given (generator=generator)")
    other, _ = run(seed + 1)
    if isinstance(other, (tuple, list)) and len(other) == 2 and isinstance(other[0], torch.Tensor) \
            and torch.equal(other[0], inputs):
        return "a different seed gave identical masks: draw from the generator you are given"
    parameters = _masking_parameters_problem(fn)
    if parameters:
        return parameters
    if off:
        return "the shares are off: " + "; ".join(off)
    if not spread:
        return "the random replacements are not spread over the vocabulary: draw them uniformly from [0, vocab_size)"
    return _masking_validation_problem(fn, ids[:2], special[:2])


def _masking_parameters_problem(fn) -> str | None:
    """A problem if ``fn`` ignores the mlm_probability, mask_token_id or vocab_size it is given
    (hard-coding BERT's 0.15, 103 or 30522): one run on a synthetic batch with other values."""
    import torch

    from bert_workbook.masking import binomial_bound

    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    vocab_size, mask_id, probability = 1000, 7, 0.4
    ids = torch.randint(10, vocab_size, (400, 64), generator=generator)
    special = torch.zeros_like(ids)
    special[:, 0] = special[:, -1] = 1
    where = "with mlm_probability=0.4, vocab_size=1000, mask_token_id=7"
    out, failed = call_or_verdict(MASK_TOKENS_NAME, fn, ids, special, vocab_size, mask_id, probability,
                                  torch.Generator().manual_seed(1))
    failed = failed if failed is not None else _masking_output_verdict(out, ids)
    if failed is not None:
        return f"{where}: {failed.message.rstrip('.')}"
    inputs, labels = out
    selected = labels != IGNORE_INDEX
    n = int((special == 0).sum())
    share = int(selected.sum()) / n
    if abs(share - probability) > binomial_bound(probability, n, MASKING_SIGMAS):
        fixed = abs(share - 0.15) <= binomial_bound(0.15, n, MASKING_SIGMAS)
        return (f"{where} it selected {share:.3f} of the tokens: "
                + ("use the mlm_probability argument, not a fixed 0.15" if fixed
                   else "the selected share must follow the mlm_probability argument"))
    chosen = max(int(selected.sum()), 1)
    as_seven = int((inputs[selected] == mask_id).sum()) / chosen
    as_bert = int((inputs[selected] == 103).sum()) / chosen
    if as_seven < 0.05 and as_bert > 0.5:
        return f"{where}, {as_bert:.2f} of the selected tokens became 103: use the mask_token_id argument, not a fixed 103"
    if int(inputs.max()) >= vocab_size:
        return (f"{where} it drew random tokens outside [0, 1000): use the vocab_size argument, not a "
                "fixed 30522")
    return None


def _masking_validation_problem(fn, ids, special) -> str | None:
    """A problem if ``fn`` accepts an impossible probability or a mask of another shape."""
    import torch

    bad_calls = {
        "mlm_probability=1.5": (ids, special, 30522, 103, 1.5),
        "mlm_probability=-0.1": (ids, special, 30522, 103, -0.1),
        "a special_tokens_mask of another shape": (ids, special[:, :-1], 30522, 103, 0.15),
    }
    problems = []
    for what, args in bad_calls.items():
        try:
            fn(*(a.clone() if isinstance(a, torch.Tensor) else a for a in args), torch.Generator().manual_seed(0))
        except ValueError:
            continue
        except Exception as error:  # a learner's function may raise anything
            problems.append(f"{what} raised {type(error).__name__}, expected ValueError")
            continue
        problems.append(f"{what} was accepted: raise ValueError")
    return "; ".join(problems) or None


mask_tokens = Exercise(
    name=MASK_TOKENS_NAME,
    checker=check_mask_tokens,
    hints=(
        "Two random draws per token: one decides whether it is selected (probability "
        "mlm_probability, never a special token), the other what happens to a selected one.",
        "labels: the original id where selected, -100 elsewhere. inputs: a clone of input_ids, "
        "then among the selected only, 80% -> mask_token_id, 10% -> a random id in [0, vocab_size), "
        "10% unchanged. Use the generator for every draw, and the arguments, not BERT's numbers.",
        "draw = torch.rand(shape, generator=generator); selected = (draw < mlm_probability) & "
        "~special.bool(); action = torch.rand(shape, generator=generator); to_mask = selected & "
        "(action < 0.8); to_random = selected & (action >= 0.8) & (action < 0.9); random ids from "
        "torch.randint(vocab_size, shape, generator=generator). Raise ValueError for a probability "
        "outside [0, 1] or a special_tokens_mask of another shape.",
    ),
    reference=_masking.mask_tokens,
    solution_code='''
def mask_tokens(input_ids, special_tokens_mask, vocab_size, mask_token_id,
                mlm_probability=0.15, generator=None):
    """Corrupt a batch by BERT's rule; return (inputs, labels)."""
    if not 0 <= mlm_probability <= 1:
        raise ValueError(f"mlm_probability must be in [0, 1], got {mlm_probability}")
    if special_tokens_mask.shape != input_ids.shape:
        raise ValueError("special_tokens_mask must have the shape of input_ids")
    selected = torch.rand(input_ids.shape, generator=generator) < mlm_probability
    selected &= ~special_tokens_mask.bool()
    labels = torch.where(selected, input_ids, -100)

    action = torch.rand(input_ids.shape, generator=generator)  # one draw decides 80/10/10
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)

    inputs = input_ids.clone()
    inputs[to_mask] = mask_token_id
    inputs[to_random] = random_ids[to_random]
    return inputs, labels
''',
)


def masked_lm_loss_from_logits(logits, labels):
    """The masked-LM loss: cross-entropy over the vocabulary, averaged over the positions whose
    label is not -100 (the selected ones) and only those. ``logits`` (batch, length, vocab),
    ``labels`` (batch, length)."""
    import torch

    selected = labels != IGNORE_INDEX
    return torch.nn.functional.cross_entropy(logits[selected], labels[selected])


MLM_LOSS_NAME = "Exercise (masked_lm_loss)"
HINT_MLM_LOSS = nudge("ex02.mlm_loss")


def _mlm_loss_cases():
    import torch

    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    cases = []
    for shape, share in (((4, 16, 50), 0.15), ((2, 5, 7), 0.5), ((3, 12, 30), 0.05)):
        logits = torch.randn(shape, generator=generator) * 3
        labels = torch.randint(shape[-1], shape[:2], generator=generator)
        keep = torch.rand(shape[:2], generator=generator) < share
        keep[0, 1] = True  # at least one selected position
        cases.append((f"logits {shape}, {int(keep.sum())} selected positions",
                      logits, torch.where(keep, labels, torch.full_like(labels, IGNORE_INDEX))))
    return cases


def _mlm_loss_mistakes(logits, labels) -> dict:
    """What the usual wrong losses give on ``(logits, labels)``, keyed by the verdict's words."""
    import torch

    selected = labels != IGNORE_INDEX
    per_position = torch.nn.functional.cross_entropy(logits[selected], labels[selected], reduction="none")
    over_positions = -torch.log_softmax(logits, dim=1).gather(-1, labels.clamp_min(0)[..., None])[..., 0]
    flat = logits.reshape(-1, logits.shape[-1])
    return {
        "the loss was averaged over every position, selected or not; average over the selected ones only":
            per_position.sum() / labels.numel(),
        "the loss was summed over the selected positions; the masked-LM loss is their mean": per_position.sum(),
        "the softmax ran over the positions (dim=1); it runs over the vocabulary, the last axis":
            over_positions[selected].mean(),
        "the positions labelled -100 were counted (as class 0); only the selected positions carry a loss":
            torch.nn.functional.cross_entropy(flat, labels.reshape(-1).clamp_min(0)),
        "the sign is flipped: cross-entropy is minus the log-probability of the right token": -per_position.mean(),
    }


def check_masked_lm_loss(fn) -> CheckResult:
    """``fn(logits, labels)`` must equal ``cross_entropy(..., ignore_index=-100)`` over the
    vocabulary on three cases, as a one-number tensor whose gradient reaches the logits and equals
    the reference's, and leave its inputs alone."""
    import torch

    lines = []
    for what, logits, labels in _mlm_loss_cases():
        leaf = logits.clone().requires_grad_(True)
        reference = masked_lm_loss_from_logits(leaf, labels)
        (expected_grad,) = torch.autograd.grad(reference, leaf)
        expected = float(reference.detach())
        out, failed = call_or_verdict(MLM_LOSS_NAME, fn, leaf, labels)
        if failed is not None:
            return failed
        if not isinstance(out, torch.Tensor):
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: your function returned {type(out).__name__}; return "
                               "the loss as a tensor (no .item()): training calls .backward() on it.", HINT_MLM_LOSS)
        if out.numel() != 1 or not out.is_floating_point():
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: expected one real number (the mean over the "
                               f"selected positions), got a {out.dtype} tensor of shape {tuple(out.shape)}.", HINT_MLM_LOSS)
        got = float(out.detach().reshape(()))
        if not math.isfinite(got):
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: your loss is {got}: did a -100 label reach "
                               "the cross-entropy, or a log of 0?", HINT_MLM_LOSS)
        if abs(got - expected) > 1e-5 * max(1.0, abs(expected)):
            mistake = named_mistake(got, _mlm_loss_mistakes(logits, labels),
                                    lambda a, b: abs(a - float(b)) <= 1e-5 * max(1.0, abs(float(b))))
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: got {got:.4f}, expected {expected:.4f}"
                               + (f": {mistake}." if mistake else "."), HINT_MLM_LOSS)
        grad = None
        if out.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), leaf, allow_unused=True)
        if grad is None:
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: the value is right, but the loss does not depend "
                               "on the logits (.item(), .detach() or torch.tensor(...) cut it off): training "
                               "needs its gradient to reach the logits.", HINT_MLM_LOSS)
        if not torch.allclose(grad.float(), expected_grad, atol=1e-6, rtol=1e-4):
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: the value is right, but its gradient with respect "
                               "to the logits is not the cross-entropy's.", HINT_MLM_LOSS)
        lines.append(f"{what}: {got:.4f}")
    return CheckResult(MLM_LOSS_NAME, True, "equal to cross_entropy(ignore_index=-100) over the vocabulary, "
                       "with its gradient, on:\n  " + "\n  ".join(lines))


mlm_loss = Exercise(
    name=MLM_LOSS_NAME,
    checker=check_masked_lm_loss,
    hints=(
        "Only the selected positions carry a loss: their label is the original token id, every "
        "other position's label is -100.",
        "Keep the selected positions: selected = labels != -100; logits[selected] has shape "
        "(positions, vocab) and labels[selected] (positions,).",
        "Return torch.nn.functional.cross_entropy(logits[selected], labels[selected]): the mean "
        "over the selected positions, as a tensor (no .item()).",
    ),
    reference=masked_lm_loss_from_logits,
    solution_code='''
def masked_lm_loss(logits, labels):
    """Mean cross-entropy over the vocabulary at the positions whose label is not -100."""
    selected = labels != -100
    return torch.nn.functional.cross_entropy(logits[selected], labels[selected])
''',
)
