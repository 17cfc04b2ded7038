"""Notebook 04's exercises: the [CLS] classifier's forward pass, and one training step."""

from __future__ import annotations

import math

from bert_workbook import training as _training
from bert_workbook.exercise import (
    HELD_OUT_SEED,
    CheckResult,
    Exercise,
    call_or_verdict,
    shape_verdict,
)
from bert_workbook.numerics import difference_bound

CLS_SENTENCES = ("A gripping, beautifully acted film.",
                 "Two hours of my life I will never get back, and the popcorn was stale too.")


def check_cls_classifier(cls) -> CheckResult:
    """``cls(encoder, num_labels)`` must give the logits of ``BertForSequenceClassification``
    when both share the encoder and the classifier weights (eval mode, padded batch)."""
    import torch
    from transformers import BertForSequenceClassification

    from bert_workbook.assets import load_encoder, load_tokenizer

    exercise = "Exercise (ClsClassifier.forward)"
    hint = ("run the encoder with input_ids, attention_mask and token_type_ids, take the hidden "
            "state at position 0 ([CLS]), apply the pooler (encoder.pooler: dense, then tanh), "
            "then dropout and self.classifier.")
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
    try:
        ours = cls(encoder, 3)
        ours.classifier.load_state_dict(reference.classifier.state_dict())
        ours.eval()
    except Exception as error:
        return CheckResult(exercise, False, f"building the model failed: {type(error).__name__}: "
                           f"{error}", "keep the __init__ given in the notebook.")
    with torch.no_grad():
        expected = reference(**batch).logits
        out, failed = call_or_verdict(exercise, lambda: ours(**batch))
    if failed is None:
        failed = shape_verdict(exercise, out, expected, "expected (batch, labels) logits", hint)
    if failed is not None:
        return failed
    if torch.allclose(out, expected, atol=1e-5, rtol=1e-5):
        return _cls_pairs_and_dropout(exercise, ours, reference, pairs, hint,
                                      float((out - expected).abs().max()))
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
        unmasked = encoder(input_ids=batch["input_ids"]).last_hidden_state
        pool = encoder.pooler
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mistakes = {
            "the pooler (dense + tanh on [CLS]) is missing": hidden[:, 0],
            "you averaged over tokens; BERT's classifier reads the [CLS] position only":
                pool.activation(pool.dense((hidden * mask).sum(1) / mask.sum(1))),
            "the attention_mask was not passed, so padding changed the [CLS] vector":
                pool.activation(pool.dense(unmasked[:, 0])),
        }
        for mistake, features in mistakes.items():
            if torch.allclose(out, ours.classifier(features), atol=1e-5, rtol=1e-5):
                return CheckResult(exercise, False, mistake + ".", hint)
    return CheckResult(exercise, False, f"your logits differ from BertForSequenceClassification's by "
                       f"up to {float((out - expected).abs().max()):.2e}.", hint)


def _cls_pairs_and_dropout(exercise, ours, reference, pairs, hint, difference) -> CheckResult:
    """The rest of ``check_cls_classifier`` once a padded batch of single sentences matched: a
    batch of sentence pairs (are token_type_ids passed on?) and training mode (is dropout
    applied where BERT applies it? the same seed must give the same logits)."""
    import torch

    with torch.no_grad():
        expected = reference(**pairs).logits
        out, failed = call_or_verdict(exercise, lambda: ours(**pairs))
        if failed is not None:
            return failed
        if not (isinstance(out, torch.Tensor) and out.shape == expected.shape
                and torch.allclose(out, expected, atol=1e-5, rtol=1e-5)):
            return CheckResult(exercise, False, "right on single sentences, wrong on sentence pairs: "
                               "pass token_type_ids on to the encoder (segment B has its own embedding).", hint)
        ours.train()
        reference.train()
        try:
            torch.manual_seed(HELD_OUT_SEED)
            trained = reference(**pairs).logits
            torch.manual_seed(HELD_OUT_SEED)
            mine = ours(**pairs)
        except Exception as error:  # a learner's bug in training mode only
            return CheckResult(exercise, False, f"in training mode your model raised {type(error).__name__}: "
                               f"{error}", hint)
        finally:
            ours.eval()
            reference.eval()
    if not (isinstance(mine, torch.Tensor) and mine.shape == trained.shape
            and torch.allclose(mine, trained, atol=1e-5, rtol=1e-5)):
        reason = ("dropout is never applied: in training mode BERT drops out the pooled [CLS] vector "
                  "before the classifier" if _dropout_missing(ours, pairs, mine)
                  else "in training mode your logits differ from BertForSequenceClassification's with "
                  "the same seed: apply self.dropout once, to the pooled vector, right before the classifier")
        return CheckResult(exercise, False, reason + ".", hint)
    return CheckResult(exercise, True, f"your logits equal BertForSequenceClassification's on a padded "
                       f"batch ({difference_bound(difference, 1e-6)}), on sentence pairs, and in training mode "
                       "with dropout.")


def _dropout_missing(ours, pairs, mine) -> bool:
    """Whether ``mine`` (training-mode logits) equal the logits without the head's dropout."""
    import torch

    with torch.no_grad():
        torch.manual_seed(HELD_OUT_SEED)
        ours.train()
        hidden = ours.encoder(**pairs).last_hidden_state
        ours.eval()
        pooled = ours.encoder.pooler.activation(ours.encoder.pooler.dense(hidden[:, 0]))
        return torch.allclose(mine, ours.classifier(pooled), atol=1e-5, rtol=1e-5)


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
    """Parameters and returned losses after ``step`` ran on the fixture's three batches (dropout
    seeded per step); raises whatever ``step`` raises."""
    import warnings

    import torch

    model, optimizer, schedule, batches = _training_step_setup()
    losses = []
    with warnings.catch_warnings():  # a slip's own warnings (schedule before step, say)
        warnings.simplefilter("ignore")
        for i, batch in enumerate(batches):
            torch.manual_seed(i)
            loss = step(model, {k: v.clone() for k, v in batch.items()}, optimizer, schedule,
                        max_grad_norm=max_grad_norm)
            losses.append(loss.detach() if isinstance(loss, torch.Tensor) else loss)
    return [p.detach().clone() for p in model.parameters()], losses


def _training_step_mistakes():
    """Reference training steps with one classic slip each, keyed by what the slip is."""
    from torch import nn

    def make(zero=True, clip=True, schedule_step=True, step=True):
        def slip(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            loss = nn.functional.cross_entropy(model(**inputs), batch["labels"])
            if zero:
                optimizer.zero_grad()
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            if step:
                optimizer.step()
            if schedule_step:
                schedule.step()
            return loss.item()
        return slip

    return {
        "the gradients were never set to zero, so each step adds the previous batches' gradients "
        "(call optimizer.zero_grad() before loss.backward())": make(zero=False),
        "the gradients are not clipped (torch.nn.utils.clip_grad_norm_(model.parameters(), "
        "max_grad_norm) between backward() and optimizer.step())": make(clip=False),
        "the learning-rate schedule never moves (call schedule.step() after optimizer.step())":
            make(schedule_step=False),
        "the weights never change: optimizer.step() is missing, or zero_grad() runs between "
        "backward() and step() and erases the gradients": make(step=False),
    }


def check_training_step(fn) -> CheckResult:
    """``fn(model, batch, optimizer, schedule, max_grad_norm=...)`` must make the reference's
    update: after three seeded steps on a tiny classifier every parameter must equal the
    reference's, and it must return each step's loss as a number."""
    import torch

    from bert_workbook.training import training_step

    exercise = "Exercise (training_step)"
    hint = ("forward (model(**inputs)), loss = cross_entropy(logits, labels), optimizer.zero_grad(), "
            "loss.backward(), clip_grad_norm_(model.parameters(), max_grad_norm), optimizer.step(), "
            "schedule.step(); return loss.item().")
    try:
        expected, expected_losses = _run_training_steps(training_step)
    except Exception as error:  # pragma: no cover - the reference itself failed
        return CheckResult(exercise, False, f"the reference could not run here: {error}")
    if not callable(fn):
        return CheckResult(exercise, False, f"expected a function, got {type(fn).__name__}.", hint)
    outcome, failed = call_or_verdict(exercise, _run_training_steps, fn)
    if failed is not None:
        return failed
    params, losses = outcome
    same = all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(params, expected))
    if not same:
        for mistake, slip in _training_step_mistakes().items():
            slipped, _ = _run_training_steps(slip)
            if len(slipped) != len(params):
                break
            if all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(params, slipped)):
                return CheckResult(exercise, False, mistake + ".", hint)
        return CheckResult(exercise, False, "after three steps your parameters differ from the "
                           "reference's (largest difference "
                           f"{max(float((a - b).abs().max()) for a, b in zip(params, expected)):.2e}).", hint)
    try:
        numbers = [float(loss) for loss in losses]
    except (TypeError, ValueError, RuntimeError):
        numbers = None
    if numbers is None or not all(isinstance(loss, (int, float)) or getattr(loss, "ndim", 1) == 0
                                  for loss in losses):
        return CheckResult(exercise, False, f"the update is right, but return the loss as a number "
                           f"(loss.item()), not {type(losses[0]).__name__}.", hint)
    if not all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(numbers, expected_losses)):
        return CheckResult(exercise, False, "the update is right, but the returned numbers are not "
                           "the batch losses (return loss.item() of this step's loss).", hint)
    return CheckResult(exercise, True, "after three seeded steps every parameter equals the "
                       "reference's, and each step's loss came back as a number.")


cls_classifier = Exercise(
    name="Exercise (ClsClassifier.forward)",
    checker=check_cls_classifier,
    hints=(
        "BERT's classifier reads one vector per sequence: the hidden state at position 0, [CLS].",
        "Run self.encoder with input_ids, attention_mask and token_type_ids; take "
        "last_hidden_state[:, 0]; apply the pooler (self.encoder.pooler.dense, then its activation, "
        "tanh).",
        "Then self.dropout, then self.classifier: return the logits, (batch, num_labels).",
    ),
    reference=_training.ClsClassifier,
)

training_step = Exercise(
    name="Exercise (training_step)",
    checker=check_training_step,
    hints=(
        "One step: forward, loss, gradients, update. The order of the calls matters.",
        "inputs = every entry of the batch but 'labels'; logits = model(**inputs); loss = "
        "cross_entropy(logits, batch['labels']).",
        "optimizer.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), "
        "max_grad_norm); optimizer.step(); schedule.step(); return loss.item().",
    ),
    reference=_training.training_step,
)
