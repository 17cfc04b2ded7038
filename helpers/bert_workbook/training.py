"""Sentence classification on BERT: the [CLS] classifier, a plain training loop, predictions,
metrics and a TF-IDF baseline. Notebooks 04-06 share these."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from bert_workbook import env

POOLINGS = ("cls", "pooler", "mean")


class SentenceClassifier(nn.Module):
    """A sentence classifier on an encoder: the final hidden states -> one vector per sentence
    (``pooling``) -> dropout -> a linear layer to one logit per label.

    ``pooling``: ``"mean"`` (the mean over real tokens; the course's default), ``"cls"`` (the raw
    [CLS] vector) or ``"pooler"`` (BERT's pooler, dense + tanh on [CLS], as
    ``BertForSequenceClassification`` does). ``class_prior``, if given, starts the bias at the
    log class shares, so an untrained head already predicts the prior and its first steps go to
    reading the input rather than to learning the class shares.
    """

    def __init__(self, encoder, num_labels: int, pooling: str = "mean", dropout: float = 0.1,
                 class_prior=None):
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise ValueError("this encoder has no pooler: pass pooling='mean' or 'cls'")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        if class_prior is not None:
            prior = torch.as_tensor(class_prior, dtype=torch.float32)
            if prior.shape != (num_labels,) or (prior < 0).any() or not torch.isclose(prior.sum(), torch.tensor(1.0)):
                raise ValueError(f"class_prior must hold {num_labels} shares that sum to 1, got {class_prior!r}")
            with torch.no_grad():
                self.classifier.bias.copy_(prior.clamp_min(1e-3).log())

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **_ignored):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        return self.classifier(self.dropout(pool_hidden(hidden, attention_mask, self.pooling, self.encoder)))


class ClsClassifier(SentenceClassifier):
    """BERT's sentence classifier, spelled out: encoder -> hidden state of [CLS] -> pooler
    (dense + tanh, as pretrained) -> dropout -> linear layer to one logit per label; what
    ``BertForSequenceClassification`` computes. ``use_pooler=False`` reads the raw [CLS] vector."""

    def __init__(self, encoder, num_labels: int, dropout: float = 0.1, use_pooler: bool = True):
        if use_pooler and getattr(encoder, "pooler", None) is None:
            raise ValueError("this encoder has no pooler: pass use_pooler=False")
        super().__init__(encoder, num_labels, pooling="pooler" if use_pooler else "cls", dropout=dropout)
        self.use_pooler = use_pooler


def pool_hidden(hidden, attention_mask, pooling: str, encoder=None):
    """One vector per sequence from (batch, tokens, hidden) states: ``"mean"`` over the real
    tokens, ``"cls"`` (position 0) or ``"pooler"`` (``encoder.pooler``: dense + tanh on [CLS])."""
    if pooling == "mean":
        if attention_mask is None:
            return hidden.mean(1)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1)
    if pooling == "pooler":
        return encoder.pooler(hidden)  # BertPooler reads position 0 itself
    if pooling == "cls":
        return hidden[:, 0]
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def _logits(output):
    return output.logits if hasattr(output, "logits") else output


def check_labels(labels: Sequence[int], num_labels: int | None, name: str = "labels") -> np.ndarray:
    """Labels as an int array; a ``ValueError`` if any is not an int in ``[0, num_labels)`` (with
    ``num_labels=None``: not an int >= 0). The course's one label validator."""
    if isinstance(labels, torch.Tensor):
        array = labels.detach().cpu().numpy()
    elif isinstance(labels, np.ndarray):
        array = labels
    else:
        array = np.asarray(list(labels))  # also a datasets Column
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name} must be a non-empty 1-d sequence of label ids")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integer label ids, got dtype {array.dtype}")
    if num_labels is None:
        if array.min() < 0:
            raise ValueError(f"{name} must be >= 0; found {int(array.min())}")
        return array
    bad = array[(array < 0) | (array >= num_labels)]
    if len(bad):
        raise ValueError(f"{name} must lie in [0, {num_labels}); found {sorted(set(bad.tolist()))[:5]}")
    return array


def tokenize_dataset(dataset, tokenizer, max_length: int = 128, text_column: str = "text"):
    """A ``datasets.Dataset`` with ``input_ids``/``attention_mask``/``token_type_ids`` added
    (truncated to ``max_length``, not padded: padding happens per batch)."""
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    if text_column not in dataset.column_names:
        raise ValueError(f"the dataset has no {text_column!r} column (it has {dataset.column_names})")
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # a timed bar would make notebook outputs differ per run
    try:
        return dataset.map(
            lambda batch: tokenizer(batch[text_column], truncation=True, max_length=max_length),
            batched=True)
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def tokenize_evaluation_set(dataset, tokenizer, max_length: int = 128, seed: int = 0):
    """A held-out split, shuffled with ``seed`` and tokenized: all of it for a learner, the first
    :func:`env.sample_size` rows in the test suite's smoke run.

    The shuffle matters because the course's splits are sorted by label: without it the smoke
    run's first hundred sentences would all be negative.
    """
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    shuffled = dataset.shuffle(seed=seed)
    return tokenize_dataset(shuffled.select(range(env.sample_size(len(shuffled)))), tokenizer, max_length)


def batches(dataset, tokenizer, batch_size: int, shuffle: bool = False,
            generator: torch.Generator | None = None, sampler=None):
    """A ``DataLoader`` of dynamically padded batches (``DataCollatorWithPadding``); ``sampler``
    (e.g. a ``WeightedRandomSampler``) replaces ``shuffle``."""
    from transformers import DataCollatorWithPadding

    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "label") if c in dataset.column_names]
    collator = DataCollatorWithPadding(tokenizer)
    rows = dataset.select_columns(columns).with_format(None)
    # Every DataLoader draws a seed when iterated: from the global generator unless it has its
    # own. A private one keeps an evaluation pass from shifting the dropout of later training.
    return torch.utils.data.DataLoader(list(rows), batch_size=batch_size, shuffle=shuffle,
                                       sampler=sampler, generator=generator or torch.Generator(),
                                       collate_fn=collator)


def token_lengths(dataset) -> list[int]:
    """The number of tokens of every example of a tokenized dataset."""
    return [len(ids) for ids in dataset["input_ids"]]


def length_grouped_sampler(dataset, batch_size: int, generator: torch.Generator):
    """Random batches of similar lengths (the ``Trainer``'s ``group_by_length``): shuffle, cut
    into mega-batches of up to 50 batches, sort each by length. Less padding, still random."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    return LengthGroupedSampler(batch_size, lengths=token_lengths(dataset), generator=generator)


def _length_sorted_batches(dataset, tokenizer, batch_size: int, longest_first: bool = False):
    """Batches of examples sorted by length (little padding) and the order that undoes the sort.
    ``longest_first`` allocates the largest batch first, so later, smaller batches reuse its
    memory instead of growing the heap batch by batch (a gigabyte over a few thousand sentences)."""
    order = np.argsort(token_lengths(dataset), kind="stable")
    if longest_first:
        order = order[::-1].copy()
    loader = batches(dataset.select(order.tolist()), tokenizer, batch_size)
    return loader, torch.from_numpy(np.argsort(order, kind="stable"))


def training_step(model, batch: dict, optimizer, schedule, max_grad_norm: float | None = 1.0,
                  loss_fn=None) -> float:
    """One update of a classifier: forward, loss, backward, gradient clipping, optimizer step,
    learning-rate schedule step. ``batch`` holds the model's inputs and ``labels``. Returns the
    loss as a float."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    loss = (loss_fn or nn.functional.cross_entropy)(_logits(model(**inputs)), batch["labels"])
    optimizer.zero_grad()  # gradients add up across backward() calls: start from zero
    loss.backward()
    if max_grad_norm:
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
    optimizer.step()
    schedule.step()
    return loss.item()


def train_classifier(model, train_dataset, tokenizer, *, epochs: float = 1, lr: float = 5e-5,
                     batch_size: int = 16, warmup_ratio: float = 0.1, weight_decay: float = 0.01,
                     max_grad_norm: float = 1.0, seed: int = 0, loss_fn=None, sampler=None,
                     group_by_length: bool = False, progress: bool = True, eval_dataset=None,
                     eval_every: int | None = None) -> dict:
    """Fine-tune ``model`` (logits from ``input_ids``/``attention_mask``) with AdamW, linear
    warm-up and decay, and gradient clipping. Returns the history: the loss of every step and,
    with ``eval_dataset``, the evaluation loss every ``eval_every`` steps (default: per epoch).

    Each step is :func:`training_step`. ``loss_fn(logits, labels)`` defaults to cross-entropy;
    ``sampler`` (e.g. a
    ``WeightedRandomSampler``) replaces shuffling; ``group_by_length`` batches sentences of
    similar lengths together (random batches otherwise), which cuts the padding.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if len(train_dataset) == 0:
        raise ValueError("train_dataset is empty")
    if "label" not in train_dataset.column_names:
        raise ValueError("train_dataset needs a 'label' column")
    num_labels = _num_labels(model)
    check_labels(train_dataset["label"], num_labels, "train_dataset labels")
    if epochs <= 0 or lr <= 0 or batch_size < 1:
        raise ValueError("epochs, lr and batch_size must be positive")
    if sampler is not None and group_by_length:
        raise ValueError("pass either a sampler or group_by_length=True, not both")
    torch.manual_seed(seed)  # dropout
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    if group_by_length:
        sampler = length_grouped_sampler(train_dataset, batch_size, generator)
    loader = batches(train_dataset, tokenizer, batch_size, shuffle=sampler is None,
                     generator=generator, sampler=sampler)
    total = env.training_steps(max(1, math.ceil(epochs * len(loader))))
    eval_every = eval_every or len(loader)
    optimizer = torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr,
                                  fused=True)  # one kernel for all tensors: ~5x faster steps on CPU
    warmup = int(warmup_ratio * total)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, total)  # the Trainer's default
    history = {"step_loss": [], "eval_step": [], "eval_loss": []}
    bar = tqdm(total=total, desc="training", disable=not progress)
    step = 0
    model.train()
    while step < total:
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            history["step_loss"].append(training_step(model, batch, optimizer, schedule,
                                                      max_grad_norm=max_grad_norm, loss_fn=loss_fn))
            step += 1
            bar.update()
            if eval_dataset is not None and (step % eval_every == 0 or step == total):
                history["eval_step"].append(step)
                history["eval_loss"].append(evaluation_loss(model, eval_dataset, tokenizer))
                model.train()
            if step >= total:
                break
    bar.close()
    optimizer.zero_grad(set_to_none=True)  # the gradients are as large as the model: free them
    model.eval()
    return history


def train_and_evaluate(model, train_dataset, eval_dataset, tokenizer, *, steps: int,
                       batch_size: int = 16, **train_options) -> dict:
    """Train ``model`` for a fixed number of ``steps`` (``train_classifier`` with its
    ``train_options``), then predict ``eval_dataset``. Returns the training ``step_loss``, the
    evaluation ``logits`` and ``metrics`` (accuracy, macro-F1, per-class recall). A fixed step
    budget keeps runs on datasets of different sizes comparable."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    epochs = steps * batch_size / len(train_dataset) if len(train_dataset) else 1
    history = train_classifier(model, train_dataset, tokenizer, epochs=epochs, batch_size=batch_size,
                               **train_options)
    logits = predict_logits(model, eval_dataset, tokenizer)
    metrics = classification_metrics(eval_dataset["label"], logits.argmax(1).tolist(), logits.shape[1])
    return {"step_loss": history["step_loss"], "logits": logits, "metrics": metrics}


def decay_groups(model, weight_decay: float) -> list[dict]:
    """AdamW parameter groups under the course's one weight-decay rule, the usual one (BERT's,
    and the ``Trainer``'s): ``weight_decay`` on the weight matrices, none on biases and
    LayerNorm parameters. Frozen parameters are left out."""
    def exempt(name: str) -> bool:
        return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if not exempt(n)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if exempt(n)], "weight_decay": 0.0}]


def _num_labels(model) -> int:
    if hasattr(model, "classifier") and hasattr(model.classifier, "out_features"):
        return model.classifier.out_features
    return model.config.num_labels


@torch.no_grad()
def _map_batches(model, dataset, tokenizer, batch_size: int, compute) -> torch.Tensor:
    """``compute(model, batch)`` on every batch of a tokenized dataset (eval mode, no gradients,
    batches of similar lengths so little compute goes to padding), rows in the dataset's order."""
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    device = next(model.parameters()).device
    model.eval()
    loader, unsort = _length_sorted_batches(dataset, tokenizer, batch_size)
    out = []
    for batch in loader:
        batch.pop("labels", None)
        out.append(compute(model, {k: v.to(device) for k, v in batch.items()}).float().cpu())
    return torch.cat(out)[unsort]


def predict_logits(model, dataset, tokenizer, batch_size: int = 64) -> torch.Tensor:
    """Logits for every example of a tokenized dataset, in the dataset's order."""
    return _map_batches(model, dataset, tokenizer, batch_size, lambda m, batch: _logits(m(**batch)))


def evaluation_loss(model, dataset, tokenizer, batch_size: int = 64) -> float:
    """Mean cross-entropy of the model on a tokenized, labelled dataset."""
    logits = predict_logits(model, dataset, tokenizer, batch_size)
    return float(nn.functional.cross_entropy(logits, torch.tensor(list(dataset["label"]))))


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> dict:
    """Accuracy, macro-F1 and per-class recall (scikit-learn), after checking the label ids."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    y_true = check_labels(y_true, num_labels, "y_true")
    y_pred = check_labels(y_pred, num_labels, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels, y_pred {len(y_pred)}: they must match")
    labels = list(range(num_labels))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "recall": [float(r) for r in recall],
    }


def tfidf_logistic_regression(train_texts: Sequence[str], train_labels: Sequence[int],
                              test_texts: Sequence[str], seed: int = 0) -> np.ndarray:
    """The classic baseline: TF-IDF of words and word pairs, then logistic regression.
    Returns predicted label ids for ``test_texts``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(train_texts) != len(train_labels) or len(train_texts) == 0:
        raise ValueError("train_texts and train_labels must be non-empty and of equal length")
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                             LogisticRegression(max_iter=1000, C=10.0, random_state=seed))
    pipeline.fit(list(train_texts), list(train_labels))
    return pipeline.predict(list(test_texts))


def sentence_features(encoder, dataset, tokenizer, batch_size: int = 64, pooling: str = "mean") -> torch.Tensor:
    """One vector per example from a frozen encoder, the input of a head-only classifier:
    ``"cls"`` (the [CLS] hidden state), ``"pooler"`` (dense + tanh on it, as the sequence
    classifier uses) or ``"mean"`` (the mean over real tokens, how sentence-transformers models
    such as the embedded MiniLM were trained to embed sentences)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return _map_batches(encoder, dataset, tokenizer, batch_size, lambda m, batch: pool_hidden(
        m(**batch).last_hidden_state, batch["attention_mask"], pooling, m))
