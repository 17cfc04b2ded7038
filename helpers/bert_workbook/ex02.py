"""Notebook 02's exercise: BERT's masking rule (15%, then 80/10/10), tested statistically."""

from __future__ import annotations

import math
from functools import lru_cache

from bert_workbook import masking as _masking
from bert_workbook.exercise import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    call_or_verdict,
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


def check_mask_tokens(fn, seed: int = 0) -> CheckResult:
    """Run ``fn`` on >= 200,000 real tokens and test BERT's masking rule statistically.

    ``fn(input_ids, special_tokens_mask, vocab_size, mask_token_id, mlm_probability, generator)``
    must return ``(inputs, labels)``. Each share must lie within ``MASKING_SIGMAS`` binomial
    standard deviations of its target.
    """
    import torch

    from bert_workbook.masking import binomial_bound, corruption_counts

    exercise = "Exercise (mask_tokens)"
    ids, special = masking_batch()
    given = ids.clone()
    vocab_size, mask_id = 30522, 103
    hint = ("select each non-special token with probability mlm_probability; then, among the "
            "selected only, 80% -> [MASK], 10% -> a random token, 10% unchanged.")

    def run(s):
        out, failed = call_or_verdict(exercise, fn, given, special.clone(), vocab_size,
                                       mask_id, 0.15, torch.Generator().manual_seed(s))
        if failed is None and (not isinstance(out, tuple) or len(out) != 2):
            failed = CheckResult(exercise, False, "return a tuple (inputs, labels).", hint)
        return out, failed

    out, failed = run(seed)
    if failed is not None:
        return failed
    inputs, labels = out
    if not (isinstance(inputs, torch.Tensor) and isinstance(labels, torch.Tensor)):
        return CheckResult(exercise, False, "inputs and labels must be tensors.", hint)
    if inputs.shape != ids.shape or labels.shape != ids.shape:
        return CheckResult(exercise, False, f"inputs/labels shapes {tuple(inputs.shape)}/"
                           f"{tuple(labels.shape)} differ from input_ids {tuple(ids.shape)}.", hint)
    is_special = special.bool()
    selected = labels != IGNORE_INDEX
    problems = []
    if not torch.equal(given, ids):
        problems.append("your function changed the input_ids it was given (in place); clone them "
                        "first (input_ids.clone()), since the caller's batch must stay intact")
        given.copy_(ids)
    if (selected & is_special).any():
        problems.append("special tokens or padding were selected")
    if (inputs[~selected] != ids[~selected]).any():
        problems.append("tokens that were not selected were changed (did you apply 80/10/10 "
                        "to every token instead of only the selected ones?)")
    if (labels[selected] != ids[selected]).any():
        problems.append("labels at selected positions must be the original token ids")
    counts = corruption_counts(ids, inputs, labels, special, mask_id)
    n, m = counts["eligible"], max(counts["selected"], 1)
    shares = [
        ("selected", counts["selected"] / n, 0.15, n),
        ("[MASK] among selected", counts["mask"] / m, 0.8, m),
        ("random among selected", counts["random"] / m, 0.1, m),
        ("kept among selected", counts["kept"] / m, 0.1, m),
    ]
    lines = []
    for name, share, target, total in shares:
        bound = binomial_bound(target, total, MASKING_SIGMAS)
        ok = abs(share - target) <= bound
        lines.append(f"{name}: {share:.4f} (target {target} ± {bound:.4f}) {'ok' if ok else 'OUT'}")
        if not ok:
            problems.append(f"{name} is {share:.4f}, outside {target} ± {bound:.4f}")
    randoms = inputs[selected & (inputs != ids) & (inputs != mask_id)]
    if len(randoms):
        distinct = len(torch.unique(randoms))
        expected = vocab_size * (1 - math.exp(-len(randoms) / vocab_size))
        lines.append(f"distinct random tokens: {distinct} of {len(randoms)} "
                     f"(uniform over the vocabulary: about {expected:.0f})")
        if distinct < 0.9 * expected:
            problems.append("random replacements are not spread over the vocabulary")
    again, _ = run(seed)
    if not (isinstance(again, tuple) and torch.equal(again[0], inputs) and torch.equal(again[1], labels)):
        problems.append("the same generator seed must give the same result")
    other, _ = run(seed + 1)
    if isinstance(other, tuple) and torch.equal(other[0], inputs):
        problems.append("a different seed gave identical masks: use the generator you are given")
    problems += _masking_parameters_used(fn, exercise)
    small_ids, small_special = ids[:2].clone(), special[:2].clone()
    bad_calls = {
        "mlm_probability=1.5": (small_ids, small_special, vocab_size, mask_id, 1.5),
        "mlm_probability=-0.1": (small_ids, small_special, vocab_size, mask_id, -0.1),
        "a special_tokens_mask of another shape": (small_ids, small_special[:, :-1], vocab_size, mask_id, 0.15),
    }
    for what, args in bad_calls.items():
        try:
            fn(*args, torch.Generator().manual_seed(seed))
        except ValueError:
            continue
        except Exception as error:  # a learner's function may raise anything
            problems.append(f"{what} raised {type(error).__name__}, expected ValueError")
            continue
        problems.append(f"{what} was accepted: raise ValueError")
    header = (f"{n:,} real tokens ({MASKING_SIGMAS}-sigma binomial bounds):\n  "
              + "\n  ".join(lines))
    if problems:
        return CheckResult(exercise, False, header + "\nProblems: " + "; ".join(problems) + ".", hint)
    return CheckResult(exercise, True, header)


def _masking_parameters_used(fn, exercise: str) -> list[str]:
    """Problems if ``fn`` ignores the mlm_probability, vocab_size or mask_token_id it is given
    (hard-coding BERT's 0.15, 30522 or 103): one run on a synthetic batch with other values."""
    import torch

    from bert_workbook.masking import binomial_bound

    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    vocab_size, mask_id, probability = 1000, 7, 0.4
    ids = torch.randint(10, vocab_size, (400, 64), generator=generator)
    special = torch.zeros_like(ids)
    special[:, 0] = special[:, -1] = 1
    out, failed = call_or_verdict(exercise, fn, ids.clone(), special.clone(), vocab_size, mask_id,
                                   probability, torch.Generator().manual_seed(1))
    if failed is not None or not (isinstance(out, tuple) and len(out) == 2
                                  and all(isinstance(t, torch.Tensor) for t in out)
                                  and out[0].shape == ids.shape and out[1].shape == ids.shape):
        return ["with mlm_probability=0.4, vocab_size=1000, mask_token_id=7 your function did not "
                "return (inputs, labels) of the batch's shape"]
    inputs, labels = out
    selected = labels != IGNORE_INDEX
    problems = []
    n = int((special == 0).sum())
    share = int(selected.sum()) / n
    if abs(share - probability) > binomial_bound(probability, n, MASKING_SIGMAS):
        problems.append(f"with mlm_probability=0.4 it selected {share:.3f} of the tokens: use the "
                        "mlm_probability argument, not a fixed 0.15")
    masked = int((inputs[selected] == mask_id).sum()) / max(int(selected.sum()), 1)
    if abs(masked - 0.8) > 0.05:
        problems.append(f"with mask_token_id=7 only {masked:.3f} of the selected tokens became 7: use "
                        "the mask_token_id argument, not a fixed 103")
    if int(inputs.max()) >= vocab_size:
        problems.append("with vocab_size=1000 it drew random tokens outside [0, 1000): use the "
                        "vocab_size argument, not a fixed 30522")
    return problems


mask_tokens = Exercise(
    name="Exercise (mask_tokens)",
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
        "torch.randint(vocab_size, shape, generator=generator).",
    ),
    reference=_masking.mask_tokens,
)


def masked_lm_loss_from_logits(logits, labels):
    """The masked-LM loss: cross-entropy over the vocabulary, averaged over the positions whose
    label is not -100 (the selected ones) and only those. ``logits`` (batch, length, vocab),
    ``labels`` (batch, length)."""
    import torch

    selected = labels != IGNORE_INDEX
    return torch.nn.functional.cross_entropy(logits[selected], labels[selected])


MLM_LOSS_NAME = "Exercise (masked_lm_loss)"


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
    import torch

    selected = labels != IGNORE_INDEX
    per_position = torch.nn.functional.cross_entropy(logits[selected], labels[selected], reduction="none")
    over_positions = -torch.log_softmax(logits, dim=1).gather(-1, labels.clamp_min(0)[..., None])[..., 0]
    return {
        "the loss was averaged over every position, selected or not; average over the selected ones only":
            per_position.sum() / labels.numel(),
        "the loss was summed over the selected positions; the masked-LM loss is their mean": per_position.sum(),
        "the softmax ran over the positions (dim=1); it runs over the vocabulary, the last axis":
            over_positions[selected].mean(),
    }


def check_masked_lm_loss(fn) -> CheckResult:
    """``fn(logits, labels)`` must equal ``cross_entropy(..., ignore_index=-100)`` over the
    vocabulary on three cases, return a tensor that carries the gradient, and leave its inputs
    alone."""
    import torch

    hint = "call ex02.mlm_loss.hint() for a nudge, again for more."
    lines = []
    for what, logits, labels in _mlm_loss_cases():
        expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                     ignore_index=IGNORE_INDEX)
        leaf = logits.clone().requires_grad_(True)
        out, failed = call_or_verdict(MLM_LOSS_NAME, fn, leaf, labels.clone())
        if failed is not None:
            return failed
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: expected the loss as a one-number tensor, got "
                               f"{type(out).__name__}{tuple(getattr(out, 'shape', ()))}.", hint)
        got = float(out.detach().reshape(()))
        if not torch.isfinite(out.detach()).all():
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: your loss is {got}: did a -100 label reach "
                               "the cross-entropy, or a log of 0?", hint)
        if abs(got - float(expected)) > 1e-5 * max(1.0, abs(float(expected))):
            for mistake, value in _mlm_loss_mistakes(logits, labels).items():
                if abs(got - float(value)) <= 1e-5 * max(1.0, abs(float(value))):
                    return CheckResult(MLM_LOSS_NAME, False, f"{what}: got {got:.4f}, expected "
                                       f"{float(expected):.4f}: {mistake}.", hint)
            return CheckResult(MLM_LOSS_NAME, False, f"{what}: got {got:.4f}, expected {float(expected):.4f}.", hint)
        if not out.requires_grad:
            return CheckResult(MLM_LOSS_NAME, False, "the value is right, but the loss carries no gradient "
                               "(.item(), numpy or a new tensor?): training needs the tensor itself.", hint)
        lines.append(f"{what}: {got:.4f}")
    return CheckResult(MLM_LOSS_NAME, True, "equal to cross_entropy(ignore_index=-100) over the vocabulary, "
                       "with its gradient, on:\n  " + "\n  ".join(lines))


mlm_loss = Exercise(
    name=MLM_LOSS_NAME,
    checker=check_masked_lm_loss,
    hints=(
        "Only the selected positions carry a loss: their label is the original token id, every "
        "other position's label is -100.",
        "Keep the selected positions: selected = labels != IGNORE_INDEX; logits[selected] has shape "
        "(positions, vocab) and labels[selected] (positions,).",
        "Return torch.nn.functional.cross_entropy(logits[selected], labels[selected]): the mean "
        "over the selected positions, as a tensor (no .item()).",
    ),
    reference=masked_lm_loss_from_logits,
)
