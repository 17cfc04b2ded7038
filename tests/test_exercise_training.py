"""Notebook 04's checks: each usual mistake, written out here on its own, gets its own name (and no
other mistake's); right answers written in other ways pass; a training step that returns the loss
tensor fails, since notebook 04's loop averages the returned losses with numpy."""

import numpy as np
import pytest
import torch
from torch import nn

from bert_workbook.exercises import ex04

# --- the [CLS] classifier ------------------------------------------------------------------------


class Head(nn.Module):
    """The notebook's __init__; each subclass below writes its own forward."""

    def __init__(self, encoder, num_labels, dropout=0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def pooled(self, hidden):
        return self.encoder.pooler.activation(self.encoder.pooler.dense(hidden[:, 0]))


class NoPooler(Head):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        return self.classifier(self.dropout(hidden[:, 0]))


class MeanOverTokens(Head):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        keep = attention_mask.unsqueeze(-1).float()
        mean = (hidden * keep).sum(1) / keep.sum(1)
        return self.classifier(self.dropout(self.encoder.pooler.activation(self.encoder.pooler.dense(mean))))


class NoAttentionMask(Head):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, token_type_ids=token_type_ids).last_hidden_state
        return self.classifier(self.dropout(self.pooled(hidden)))


class Probabilities(Head):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        return torch.softmax(self.classifier(self.dropout(self.pooled(hidden))), dim=-1)


class NoTokenTypes(Head):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.classifier(self.dropout(self.pooled(hidden)))


class NoDropout(Head):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        return self.classifier(self.pooled(hidden))


class ReturnsTheOutputObject(Head):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


CLS_MISTAKES = {
    NoPooler: "the pooler (dense + tanh on [CLS]) is missing",
    MeanOverTokens: "you averaged over tokens",
    NoAttentionMask: "the attention_mask was not passed",
    Probabilities: "a softmax was applied",
    NoTokenTypes: "wrong on sentence pairs",
    NoDropout: "dropout is never applied",
    ReturnsTheOutputObject: "must be a torch tensor",
}


@pytest.mark.parametrize("mistake", CLS_MISTAKES, ids=lambda c: c.__name__)
def test_cls_classifier_names_each_mistake_and_only_it(mistake):
    result = ex04.cls_classifier.check(mistake)
    assert not result.passed
    assert CLS_MISTAKES[mistake] in result.message, result
    others = [words for other, words in CLS_MISTAKES.items() if other is not mistake]
    assert not [words for words in others if words in result.message], result


class WithPoolerOutput(Head):
    """Right, written another way: BertModel's own pooler_output, functional dropout."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        pooled = self.encoder(input_ids, attention_mask, token_type_ids).pooler_output
        return self.classifier(nn.functional.dropout(pooled, self.dropout.p, self.training))


class InDoublePrecision(Head):
    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        return self.classifier(self.dropout(self.pooled(hidden))).double()


@pytest.mark.parametrize("answer", [ex04.cls_classifier.reference, WithPoolerOutput, InDoublePrecision])
def test_cls_classifier_passes_right_answers_written_differently(answer):
    result = ex04.cls_classifier.check(answer)
    assert result.passed, result


# --- one training step ------------------------------------------------------------------------------


def _loss(model, batch):
    return nn.functional.cross_entropy(model(**{k: v for k, v in batch.items() if k != "labels"}), batch["labels"])


def never_zeroes(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    schedule.step()
    return loss.item()


def never_clips(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.item()


def clips_after_the_step(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    schedule.step()
    return loss.item()


def schedule_never_steps(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


def schedule_before_the_step(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    schedule.step()
    optimizer.step()
    return loss.item()


def zeroes_before_the_step(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.zero_grad()
    optimizer.step()
    schedule.step()
    return loss.item()


def returns_the_tensor(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    schedule.step()
    return loss


def returns_the_first_loss_only(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    schedule.step()
    return 0.5


STEP_MISTAKES = {
    never_zeroes: "the gradients were never set to zero",
    never_clips: "the gradients are not clipped",
    clips_after_the_step: "the gradients are not clipped",
    schedule_never_steps: "the learning-rate schedule never moves",
    schedule_before_the_step: "schedule.step() ran before optimizer.step()",
    zeroes_before_the_step: "the weights never change",
    returns_the_tensor: "returned the loss as a tensor: return loss.item(), a Python float",
    returns_the_first_loss_only: "the returned numbers are not the batch losses",
}


@pytest.mark.parametrize("mistake", STEP_MISTAKES, ids=lambda f: f.__name__)
def test_training_step_names_each_mistake_and_only_it(mistake):
    result = ex04.training_step.check(mistake)
    assert not result.passed
    assert STEP_MISTAKES[mistake] in result.message, result
    others = {words for other, words in STEP_MISTAKES.items() if words != STEP_MISTAKES[mistake]}
    assert not [words for words in others if words in result.message], result


def test_a_loss_tensor_would_break_the_notebooks_loop():
    """What notebook 04's fine-tuning loop does with the returned losses."""
    losses = [torch.tensor(0.5, requires_grad=True) * 2 for _ in range(3)]
    with pytest.raises(RuntimeError):
        float(np.mean(losses[-2:]))
    assert float(np.mean([0.5, 1.0])) == 0.75


def with_loss_fn_and_float(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    """Right, written another way: the loss function argument, zero_grad(set_to_none=False),
    clipping a list of parameters, float(loss)."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    labels = batch["labels"]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   token_type_ids=batch["token_type_ids"])
    loss = loss_fn(logits, labels)
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), max_norm=max_grad_norm)
    optimizer.step()
    schedule.step()
    return float(loss.detach())


def returns_numpy_float64(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    loss = _loss(model, batch)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    schedule.step()
    return np.float64(loss.item())  # a subclass of Python's float


@pytest.mark.parametrize("answer", [ex04.training_step.reference, with_loss_fn_and_float, returns_numpy_float64])
def test_training_step_passes_right_answers_written_differently(answer):
    result = ex04.training_step.check(answer)
    assert result.passed, result
