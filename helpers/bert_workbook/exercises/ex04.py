"""Notebook 04's exercises: the [CLS] classifier's forward pass, and one training step."""

from __future__ import annotations

import math

from bert_workbook import training as _training
from bert_workbook.exercises.core import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    call_or_verdict,
    named_mistake,
    nudge,
    shape_verdict,
)
from bert_workbook.numerics import difference_bound

CLS_SENTENCES = ("A gripping, beautifully acted film.",
                 "Two hours of my life I will never get back, and the popcorn was stale too.")


CLS_NAME = "Exercise (ClsClassifier.forward)"
HINT_CLS = nudge("ex04.cls_classifier")


def _logits_equal(a, b) -> bool:
    """Equal within the check's tolerance for logits (1e-5), whatever the floating dtypes."""
    import torch

    return torch.allclose(a.detach().float(), b.detach().float(), atol=1e-5, rtol=1e-5)


def check_cls_classifier(cls) -> CheckResult:
    """``cls(encoder, num_labels)`` must give the logits of ``BertForSequenceClassification``
    when both share the encoder's weights and the classifier's (eval mode, padded batch; then
    sentence pairs, then training mode with the same seed). The learner's model gets its own copy
    of the encoder."""
    import copy

    import torch
    from transformers import BertForSequenceClassification

    from bert_workbook.assets import load_encoder, load_tokenizer

    tokenizer, encoder = load_tokenizer("embedded"), load_encoder("embedded")
    settings = {k: v for k, v in encoder.config.to_dict().items() if k not in ("id2label", "label2id")}
    config = encoder.config.__class__.from_dict({**settings, "num_labels": 3})
    torch.manual_seed(HELD_OUT_SEED)
    reference = BertForSequenceClassification(config)
    reference.bert = encoder
    reference.eval()
    batch = tokenizer(list(CLS_SENTENCES), padding=True, return_tensors="pt")
    pairs = tokenizer(list(CLS_SENTENCES), ["Would I watch it again? Yes.", "No."], padding=True,
                      return_tensors="pt")
    if not callable(cls):
        return CheckResult(CLS_NAME, False, f"expected your class, got {type(cls).__name__}: run the cell "
                           "that defines ClsClassifier, then pass the class itself.")
    try:
        ours = cls(copy.deepcopy(encoder), 3)
        ours.classifier.load_state_dict(reference.classifier.state_dict())
        ours.eval()
    except NotImplementedError:
        return CheckResult(CLS_NAME, False, "not implemented yet: replace the `raise NotImplementedError`.")
    except Exception as error:
        return CheckResult(CLS_NAME, False, f"building the model failed ({type(error).__name__}: {error}): keep "
                           "the __init__ given in the notebook.", HINT_CLS)
    with torch.no_grad():
        expected = reference(**batch).logits
        out, failed = call_or_verdict(CLS_NAME, ours, **batch)
    if failed is None:
        failed = shape_verdict(CLS_NAME, out, expected, "your logits (batch, labels)", HINT_CLS)
    if failed is not None:
        return failed
    if _logits_equal(out, expected):
        return _cls_pairs_and_dropout(ours, reference, pairs, float((out.float() - expected).abs().max()))
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
        unmasked = encoder(input_ids=batch["input_ids"]).last_hidden_state
        pool, head = encoder.pooler, reference.classifier
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mistakes = {
            "the pooler (dense + tanh on [CLS]) is missing": head(hidden[:, 0]),
            "you averaged over tokens; BERT's classifier reads the [CLS] position only":
                head(pool.activation(pool.dense((hidden * mask).sum(1) / mask.sum(1)))),
            "the attention_mask was not passed, so padding changed the [CLS] vector":
                head(pool.activation(pool.dense(unmasked[:, 0]))),
            "a softmax was applied: return the logits themselves (cross_entropy applies its own softmax)":
                expected.softmax(-1),
        }
    mistake = named_mistake(out.detach(), mistakes, _logits_equal)
    if mistake:
        return CheckResult(CLS_NAME, False, mistake + ".", HINT_CLS)
    return CheckResult(CLS_NAME, False, f"your logits differ from BertForSequenceClassification's by up to "
                       f"{float((out.detach().float() - expected).abs().max()):.2e}.", HINT_CLS)


def _cls_pairs_and_dropout(ours, reference, pairs, difference) -> CheckResult:
    """The rest of ``check_cls_classifier`` once a padded batch of single sentences matched: a
    batch of sentence pairs (are token_type_ids passed on?) and training mode (is dropout
    applied where BERT applies it? the same seed must give the same logits)."""
    import torch

    with torch.no_grad():
        expected = reference(**pairs).logits
        out, failed = call_or_verdict(CLS_NAME, ours, **pairs)
        if failed is not None:
            return failed
        if not (isinstance(out, torch.Tensor) and out.shape == expected.shape and _logits_equal(out, expected)):
            return CheckResult(CLS_NAME, False, "right on single sentences, wrong on sentence pairs: "
                               "token_type_ids must reach the encoder (segment B has its own embedding).", HINT_CLS)
        ours.train()
        reference.train()
        try:
            torch.manual_seed(HELD_OUT_SEED)
            trained = reference(**pairs).logits
            torch.manual_seed(HELD_OUT_SEED)
            mine = ours(**{key: value.clone() for key, value in pairs.items()})
        except Exception as error:  # a learner's bug in training mode only
            return CheckResult(CLS_NAME, False, f"in training mode your model raised {type(error).__name__}: "
                               f"{error}", HINT_CLS)
        finally:
            ours.eval()
            reference.eval()
        if not (isinstance(mine, torch.Tensor) and mine.shape == trained.shape and _logits_equal(mine, trained)):
            reason = ("dropout is never applied: in training mode BERT drops out the pooled [CLS] vector "
                      "before the classifier" if isinstance(mine, torch.Tensor) and _dropout_missing(reference, pairs, mine)
                      else "in training mode your logits differ from BertForSequenceClassification's with "
                      "the same seed: dropout belongs once, on the pooled vector, right before the classifier")
            return CheckResult(CLS_NAME, False, reason + ".", HINT_CLS)
    return CheckResult(CLS_NAME, True, f"your logits equal BertForSequenceClassification's on a padded "
                       f"batch ({difference_bound(difference, 1e-6)}), on sentence pairs, and in training mode "
                       "with dropout.")


def _dropout_missing(reference, pairs, mine) -> bool:
    """Whether ``mine`` (training-mode logits) equal the reference's without the head's dropout."""
    import torch

    with torch.no_grad():
        torch.manual_seed(HELD_OUT_SEED)
        reference.train()
        try:
            hidden = reference.bert(**pairs).last_hidden_state
        finally:
            reference.eval()
        pooled = reference.bert.pooler.activation(reference.bert.pooler.dense(hidden[:, 0]))
        return mine.shape == (len(hidden), reference.num_labels) and _logits_equal(mine, reference.classifier(pooled))


def _training_step_setup():
    """A tiny seeded classifier, its optimizer and a schedule whose factor changes every step,
    and three padded batches: the fixture of ``check_training_step``."""
    import torch
    from transformers import BertConfig, BertModel

    from bert_workbook.training import SentenceClassifier

    torch.manual_seed(HELD_OUT_SEED)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    model = SentenceClassifier(BertModel(config), 3, pooling="mean", dropout=0.2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    batches = []
    for _ in range(3):
        mask = torch.ones(4, 10, dtype=torch.long)
        mask[1, 6:] = mask[3, 3:] = 0
        batches.append({"input_ids": torch.randint(1, 64, (4, 10), generator=generator) * mask,
                        "attention_mask": mask, "token_type_ids": torch.zeros(4, 10, dtype=torch.long),
                        "labels": torch.randint(0, 3, (4,), generator=generator)})
    return model, optimizer, schedule, batches


def _run_training_steps(step, max_grad_norm: float = 0.05):
    """Parameters and returned losses (as returned) after ``step`` ran on the fixture's three
    batches (dropout seeded per step); raises whatever ``step`` raises."""
    import warnings

    import torch

    model, optimizer, schedule, batches = _training_step_setup()
    losses = []
    with warnings.catch_warnings():  # a slip's own warnings (schedule before step, say)
        warnings.simplefilter("ignore")
        for i, batch in enumerate(batches):
            torch.manual_seed(i)
            losses.append(step(model, {k: v.clone() for k, v in batch.items()}, optimizer, schedule,
                               max_grad_norm=max_grad_norm))
    return [p.detach().clone() for p in model.parameters()], losses


def _training_step_mistakes():
    """Reference training steps with one classic slip each, keyed by what the slip is."""
    from torch import nn

    def make(zero=True, clip=True, schedule_step=True, step=True, schedule_first=False):
        def slip(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            loss = nn.functional.cross_entropy(model(**inputs), batch["labels"])
            if zero:
                optimizer.zero_grad()
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            if schedule_first:
                schedule.step()
            if step:
                optimizer.step()
            if schedule_step and not schedule_first:
                schedule.step()
            return loss.item()
        return slip

    return {
        "the gradients were never set to zero, so each step adds the previous batches' gradients "
        "(optimizer.zero_grad() belongs before loss.backward())": make(zero=False),
        "the gradients are not clipped (clip_grad_norm_ belongs between backward() and "
        "optimizer.step())": make(clip=False),
        "the learning-rate schedule never moves (schedule.step() is missing)": make(schedule_step=False),
        "schedule.step() ran before optimizer.step(), so every update used the next step's "
        "learning rate": make(schedule_first=True),
        "the weights never change: optimizer.step() is missing, or zero_grad() runs between "
        "backward() and step() and erases the gradients": make(step=False),
    }


TRAINING_STEP_NAME = "Exercise (training_step)"
HINT_TRAINING_STEP = nudge("ex04.training_step")


def _parameters_equal(a, b) -> bool:
    import torch

    return len(a) == len(b) and all(x.shape == y.shape and torch.allclose(x.float(), y.float(), atol=1e-6, rtol=1e-5)
                                    for x, y in zip(a, b))


def check_training_step(fn) -> CheckResult:
    """``fn(model, batch, optimizer, schedule, max_grad_norm=...)`` must make the reference's
    update: after three seeded steps on a tiny classifier every parameter must equal the
    reference's, and it must return each step's loss as a Python float (notebook 04's loop
    averages the losses with numpy)."""
    import torch

    from bert_workbook.training import training_step

    expected, expected_losses = _run_training_steps(training_step)
    if not callable(fn):
        return CheckResult(TRAINING_STEP_NAME, False, f"expected a function, got {type(fn).__name__}: define it "
                           "in the cell above, run that cell, then pass it here.")
    outcome, failed = call_or_verdict(TRAINING_STEP_NAME, _run_training_steps, fn)
    if failed is not None:
        return failed
    params, losses = outcome
    if not _parameters_equal(params, expected):
        slipped = {mistake: _run_training_steps(slip)[0] for mistake, slip in _training_step_mistakes().items()}
        mistake = named_mistake(params, slipped, _parameters_equal)
        if mistake:
            return CheckResult(TRAINING_STEP_NAME, False, mistake + ".", HINT_TRAINING_STEP)
        largest = max((float((a.float() - b).abs().max()) for a, b in zip(params, expected) if a.shape == b.shape),
                      default=float("nan"))
        return CheckResult(TRAINING_STEP_NAME, False, "after three steps your parameters differ from the "
                           f"reference's (largest difference {largest:.2e}).", HINT_TRAINING_STEP)
    kinds = {"None" if loss is None else type(loss).__name__ for loss in losses if not isinstance(loss, float)}
    if any(isinstance(loss, torch.Tensor) for loss in losses):
        return CheckResult(TRAINING_STEP_NAME, False, "the update is right, but your function returned the loss "
                           "as a tensor: return loss.item(), a Python float. The training loop below averages "
                           "the losses with numpy, which cannot read a tensor that carries a gradient.",
                           HINT_TRAINING_STEP)
    if kinds:
        return CheckResult(TRAINING_STEP_NAME, False, f"the update is right, but your function returned "
                           f"{' and '.join(sorted(kinds))}: return the loss as a Python float (loss.item()).",
                           HINT_TRAINING_STEP)
    if not all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(losses, expected_losses)):
        return CheckResult(TRAINING_STEP_NAME, False, "the update is right, but the returned numbers are not "
                           "the batch losses: return this step's loss, loss.item().", HINT_TRAINING_STEP)
    return CheckResult(TRAINING_STEP_NAME, True, "after three seeded steps every parameter equals the "
                       "reference's, and each step's loss came back as a number.")


cls_classifier = Exercise(
    name=CLS_NAME,
    checker=check_cls_classifier,
    hints=(
        "BERT's classifier reads one vector per sequence: the hidden state at position 0, [CLS].",
        "Run self.encoder with input_ids, attention_mask and token_type_ids; take "
        "last_hidden_state[:, 0]; apply the pooler (self.encoder.pooler.dense, then its activation, "
        "tanh).",
        "Then self.dropout, then self.classifier: return the logits, (batch, num_labels).",
    ),
    reference=_training.ClsClassifier,
    solution_code='''
class ClsClassifier(torch.nn.Module):
    """Encoder -> [CLS] hidden state -> pooler -> dropout -> linear."""

    def __init__(self, encoder, num_labels, dropout=0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        cls = hidden[:, 0]  # the [CLS] position of every sequence
        pooled = self.encoder.pooler.activation(self.encoder.pooler.dense(cls))
        return self.classifier(self.dropout(pooled))
''',
)

training_step = Exercise(
    name=TRAINING_STEP_NAME,
    checker=check_training_step,
    hints=(
        "One step: forward, loss, gradients, update. The order of the calls matters.",
        "inputs = every entry of the batch but 'labels'; logits = model(**inputs); loss = "
        "cross_entropy(logits, batch['labels']).",
        "optimizer.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), "
        "max_grad_norm); optimizer.step(); schedule.step(); return loss.item().",
    ),
    reference=_training.training_step,
    solution_code='''
def training_step(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
    """One update: forward, loss, zero_grad, backward, clip, optimizer step, schedule step.
    `batch` holds the model's inputs and "labels"; returns the loss as a float."""
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    loss = loss_fn(model(**inputs), batch["labels"])
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    schedule.step()
    return loss.item()
''',
)
