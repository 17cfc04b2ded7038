"""Notebook 02's checks: each usual mistake, written out here on its own, gets its own name (and no
other mistake's); right answers written in other ways pass."""

import pytest
import torch
import torch.nn.functional as F

from bert_workbook.exercises import ex02

# --- mask_tokens: one function per mistake ------------------------------------------------------


def right_with_bernoulli(input_ids, special_tokens_mask, vocab_size, mask_token_id, mlm_probability=0.15,
                         generator=None):
    """Right, written another way: Bernoulli draws, then [MASK] for 80%, random for half the rest;
    returns a list."""
    if not 0 <= mlm_probability <= 1 or special_tokens_mask.shape != input_ids.shape:
        raise ValueError("bad arguments")
    probability = torch.full(input_ids.shape, float(mlm_probability))
    selected = torch.bernoulli(probability, generator=generator).bool() & (special_tokens_mask == 0)
    to_mask = selected & torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool()
    to_random = selected & ~to_mask & torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool()
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    random_ids = torch.randint(0, vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(to_random, random_ids, inputs)
    return [inputs, torch.where(selected, input_ids, torch.full_like(input_ids, -100))]


def _bert_rule(input_ids, special, vocab_size, mask_id, p, generator, *, mask_value=None, random_high=None):
    """BERT's rule with plain torch (the mistakes below change one line of it)."""
    if not 0 <= p <= 1 or special.shape != input_ids.shape:
        raise ValueError("bad arguments")
    selected = (torch.rand(input_ids.shape, generator=generator) < p) & ~special.bool()
    action = torch.rand(input_ids.shape, generator=generator)
    inputs = input_ids.clone()
    inputs[selected & (action < 0.8)] = mask_id if mask_value is None else mask_value
    to_random = selected & (action >= 0.8) & (action < 0.9)
    random_ids = torch.randint(vocab_size if random_high is None else random_high, input_ids.shape, generator=generator)
    inputs[to_random] = random_ids[to_random]
    return inputs, torch.where(selected, input_ids, -100)


def changes_its_input(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    inputs, labels = _bert_rule(input_ids, special, vocab_size, mask_id, p, generator)
    input_ids[:] = inputs  # the caller's batch is overwritten
    return input_ids, labels


def selects_specials(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    return _bert_rule(input_ids, torch.zeros_like(special), vocab_size, mask_id, p, generator)


def labels_are_the_corrupted_tokens(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    inputs, labels = _bert_rule(input_ids, special, vocab_size, mask_id, p, generator)
    return inputs, torch.where(labels != -100, inputs, labels)


def notebook_common_mistake(input_ids, special_tokens_mask, vocab_size, mask_token_id, mlm_probability=0.15,
                            generator=None):
    """Notebook 02's showcased mistake, verbatim: 'random' drawn over all tokens, not the selected."""
    eligible = ~special_tokens_mask.bool()
    selected = (torch.rand(input_ids.shape, generator=generator) < mlm_probability) & eligible
    labels = torch.where(selected, input_ids, -100)
    inputs = input_ids.clone()
    inputs[selected & (torch.rand(input_ids.shape, generator=generator) < 0.8)] = mask_token_id
    to_random = eligible & (torch.rand(input_ids.shape, generator=generator) < 0.1)  # the bug
    inputs[to_random] = torch.randint(vocab_size, input_ids.shape, generator=generator)[to_random]
    return inputs, labels


def global_randomness(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    return _bert_rule(input_ids, special, vocab_size, mask_id, p, None)


def own_fixed_generator(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    return _bert_rule(input_ids, special, vocab_size, mask_id, p, torch.Generator().manual_seed(0))


def fixed_probability(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    if not 0 <= p <= 1:
        raise ValueError("bad probability")
    return _bert_rule(input_ids, special, vocab_size, mask_id, 0.15, generator)


def fixed_mask_id(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    return _bert_rule(input_ids, special, vocab_size, mask_id, p, generator, mask_value=103)


def fixed_vocab_size(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    return _bert_rule(input_ids, special, vocab_size, mask_id, p, generator, random_high=30522)


def always_mask(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    if not 0 <= p <= 1 or special.shape != input_ids.shape:
        raise ValueError("bad arguments")
    selected = (torch.rand(input_ids.shape, generator=generator) < p) & ~special.bool()
    return torch.where(selected, mask_id, input_ids), torch.where(selected, input_ids, -100)


def random_from_three_tokens(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    inputs, labels = _bert_rule(input_ids, special, vocab_size, mask_id, p, generator, random_high=3)
    return inputs, labels


def no_validation(input_ids, special, vocab_size, mask_id, p=0.15, generator=None):
    p = min(max(p, 0.0), 1.0)
    special = special if special.shape == input_ids.shape else torch.zeros_like(input_ids)
    return _bert_rule(input_ids, special, vocab_size, mask_id, p, generator)


MASKING_MISTAKES = {
    changes_its_input: "changed `input_ids` in place",
    selects_specials: "special tokens or padding were selected",
    labels_are_the_corrupted_tokens: "labels at the selected positions must be the original token ids",
    notebook_common_mistake: "tokens that were not selected were changed",
    global_randomness: "the same generator seed gave a different result",
    own_fixed_generator: "a different seed gave identical masks",
    fixed_probability: "not a fixed 0.15",
    fixed_mask_id: "not a fixed 103",
    fixed_vocab_size: "not a fixed 30522",
    always_mask: "the shares are off",
    random_from_three_tokens: "not spread over the vocabulary",
    no_validation: "was accepted: raise ValueError",
}


@pytest.mark.parametrize("mistake", MASKING_MISTAKES, ids=lambda f: f.__name__)
def test_mask_tokens_names_each_mistake_and_only_it(mistake):
    result = ex02.mask_tokens.check(mistake)
    assert not result.passed
    assert MASKING_MISTAKES[mistake] in result.message, result
    others = [words for other, words in MASKING_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def test_the_notebooks_common_mistake_is_not_blamed_on_the_mask_token_id():
    message = ex02.mask_tokens.check(notebook_common_mistake).message
    assert "mask_token_id" not in message and "103" not in message.split("\n")[0]


@pytest.mark.parametrize("answer", [ex02.mask_tokens.reference, right_with_bernoulli, _bert_rule],
                         ids=["reference", "bernoulli, returns a list", "plain torch"])
def test_mask_tokens_passes_right_answers_written_differently(answer):
    result = ex02.mask_tokens.check(answer)
    assert result.passed, result


# --- the masked-LM loss ------------------------------------------------------------------------------


def mean_over_every_position(logits, labels):
    selected = labels != -100
    losses = F.cross_entropy(logits[selected], labels[selected], reduction="none")
    return losses.sum() / labels.numel()


def summed(logits, labels):
    selected = labels != -100
    return F.cross_entropy(logits[selected], labels[selected], reduction="sum")


def softmax_over_positions(logits, labels):
    log_p = torch.log_softmax(logits, dim=1)
    selected = labels != -100
    picked = log_p.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return -picked[selected].mean()


def ignored_positions_as_class_zero(logits, labels):
    return F.cross_entropy(logits.flatten(0, 1), torch.where(labels == -100, 0, labels).flatten())


def sign_flipped(logits, labels):
    selected = labels != -100
    return torch.log_softmax(logits[selected], -1).gather(1, labels[selected, None]).mean()


def rebuilt_from_a_number(logits, labels):
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
    return torch.tensor(loss.item(), requires_grad=True)


def item(logits, labels):
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten()).item()


def labels_changed_in_place(logits, labels):
    selected = labels != -100
    labels[~selected] = 0
    return F.cross_entropy(logits[selected], labels[selected])


def one_loss_per_position(logits, labels):
    selected = labels != -100
    return F.cross_entropy(logits[selected], labels[selected], reduction="none")


def value_without_its_gradient(logits, labels):
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
    return loss.detach() + 0 * logits.sum()


MLM_MISTAKES = {
    mean_over_every_position: "averaged over every position",
    summed: "summed over the selected positions",
    softmax_over_positions: "the softmax ran over the positions",
    ignored_positions_as_class_zero: "labelled -100 were counted (as class 0)",
    sign_flipped: "the sign is flipped",
    rebuilt_from_a_number: "does not depend on the logits",
    item: "return the loss as a tensor (no .item())",
    labels_changed_in_place: "changed `labels` in place",
    one_loss_per_position: "expected one real number",
    value_without_its_gradient: "its gradient with respect to the logits is not",
}


@pytest.mark.parametrize("mistake", MLM_MISTAKES, ids=lambda f: f.__name__)
def test_masked_lm_loss_names_each_mistake_and_only_it(mistake):
    result = ex02.mlm_loss.check(mistake)
    assert not result.passed
    assert MLM_MISTAKES[mistake] in result.message, result
    others = [words for other, words in MLM_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


def flattened(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))  # ignore_index=-100


def by_hand_in_float64(logits, labels):
    selected = labels != -100
    log_p = torch.log_softmax(logits.double(), dim=-1)[selected]
    return -log_p.gather(1, labels[selected].unsqueeze(1)).mean()


@pytest.mark.parametrize("answer", [ex02.masked_lm_loss_from_logits, flattened, by_hand_in_float64])
def test_masked_lm_loss_passes_right_answers_written_differently(answer):
    result = ex02.mlm_loss.check(answer)
    assert result.passed, result
