"""Partial fine-tuning: freeze the embeddings and the lower layers, compute their output once
(:func:`cache_hidden_states`), and fine-tune only the top layers and a head from that cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bert_workbook import env
from bert_workbook.measure._common import _as_labels, log_prior_bias
from bert_workbook.measure.features import _disk_path, _save
from bert_workbook.measure.heads import Curve, Run, _batch_order, _group_by_length
from bert_workbook.measure.metrics import evaluate_logits
from bert_workbook.training import POOLINGS as HEAD_POOLINGS
from bert_workbook.training import _length_sorted_batches, decay_groups, pool_hidden


def _padded(rows: list[torch.Tensor], value: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` (each (tokens, ...)) padded with ``value`` to the longest, and the attention mask."""
    lengths = torch.tensor([len(r) for r in rows])
    mask = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).long()
    return nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=value), mask


def _run_layers(layers, config, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``hidden`` through BERT ``layers`` in turn, attending to the tokens of ``attention_mask``."""
    from transformers.masking_utils import create_bidirectional_mask

    # positional: transformers 5.0 names the second argument input_embeds, later releases inputs_embeds
    mask = create_bidirectional_mask(config, hidden, attention_mask)
    for layer in layers:
        hidden = layer(hidden, mask)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return hidden


@dataclass
class CachedStates:
    """The hidden states of every example after layer ``layer`` of a frozen encoder, unpadded
    (``states[i]`` has shape (tokens_i, hidden)), with their labels."""

    states: list[torch.Tensor]
    labels: torch.Tensor | None
    layer: int

    def __len__(self) -> int:
        return len(self.states)

    def lengths(self) -> torch.Tensor:
        """The number of tokens of each example."""
        return torch.tensor([len(s) for s in self.states])

    def select(self, rows) -> CachedStates:
        rows = [int(r) for r in rows]
        return CachedStates([self.states[r] for r in rows],
                            None if self.labels is None else self.labels[rows], self.layer)

    def batch(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """The states of ``rows`` padded with zeros to the longest, and their attention mask."""
        return _padded([self.states[int(r)] for r in rows])


class LiveStates:
    """What :class:`CachedStates` holds, computed afresh for every batch: the embeddings and the
    first ``layer`` layers of the frozen ``encoder`` run (without gradients) each time a batch is
    asked for. The embedding layer runs in training mode, so a noise hook on it
    (:mod:`bert_workbook.noise`) draws new noise for every batch; the layers run in eval mode.
    Use it as the training set of :func:`train_top_layers`; evaluate on clean cached states."""

    def __init__(self, encoder, dataset, tokenizer, layer: int):
        if not 0 <= layer < encoder.config.num_hidden_layers:
            raise ValueError(f"layer must lie in [0, {encoder.config.num_hidden_layers - 1}], got {layer}")
        if len(dataset) == 0 or "label" not in dataset.column_names:
            raise ValueError("dataset must be a non-empty tokenized dataset with a 'label' column")
        self.encoder, self.layer = encoder, layer
        self.pad_id = tokenizer.pad_token_id or 0
        self.ids = [torch.as_tensor(row, dtype=torch.long) for row in dataset["input_ids"]]
        self.labels = torch.as_tensor(list(dataset["label"]), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> torch.Tensor:
        """The number of tokens of each example."""
        return torch.tensor([len(ids) for ids in self.ids])

    @torch.no_grad()
    def batch(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = _padded([self.ids[int(r)] for r in rows], self.pad_id)
        device = next(self.encoder.parameters()).device
        ids, on_device_mask = ids.to(device), mask.to(device)
        self.encoder.eval()
        words = self.encoder.get_input_embeddings()
        words.train()  # noise hooks act in training mode only
        try:
            hidden = self.encoder.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        finally:
            words.eval()
        hidden = _run_layers(self.encoder.encoder.layer[:self.layer], self.encoder.config, hidden, on_device_mask)
        hidden = hidden.float() * on_device_mask[..., None]  # zeros at padding, as CachedStates.batch
        return hidden.cpu(), mask


@torch.no_grad()
def cache_hidden_states(encoder, dataset, tokenizer, layer: int, batch_size: int = 64) -> CachedStates:
    """Run the embeddings and the first ``layer`` layers of ``encoder`` once over a tokenized
    dataset and keep each example's hidden states (real tokens only) for partial fine-tuning.
    Kept on disk like :func:`encode_features` when ``env.cache_dir()`` names a folder."""
    if not 0 <= layer <= encoder.config.num_hidden_layers:
        raise ValueError(f"layer must lie in [0, {encoder.config.num_hidden_layers}], got {layer}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    path = _disk_path("states", encoder, dataset, None, layer, batch_size)
    if path is not None and path.exists():
        return CachedStates(**torch.load(path))
    encoder.eval()
    device = next(encoder.parameters()).device
    loader, unsort = _length_sorted_batches(dataset, tokenizer, batch_size, longest_first=True)
    states = []
    for batch in loader:
        batch.pop("labels", None)
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = encoder(**batch, output_hidden_states=True).hidden_states[layer].float().cpu()
        lengths = batch["attention_mask"].sum(1)
        states += [h[:n].clone() for h, n in zip(hidden, lengths.tolist())]
    states = [states[i] for i in unsort.tolist()]
    env.release_memory()
    labels = (torch.as_tensor(list(dataset["label"]), dtype=torch.long)
              if "label" in dataset.column_names else None)
    cached = CachedStates(states, labels, layer)
    _save(path, {"states": states, "labels": labels, "layer": layer})
    return cached


class TopLayersClassifier(nn.Module):
    """The top layers of an encoder (from ``from_layer`` on) and a classification head, run on
    cached hidden states: ``pooling`` "mean" (over real tokens) or "cls", then dropout and a
    linear layer whose bias starts at ``bias_init`` (e.g. the log class prior)."""

    def __init__(self, encoder, from_layer: int, num_labels: int, pooling: str = "mean",
                 dropout: float = 0.1, bias_init=None):
        super().__init__()
        import copy

        total = encoder.config.num_hidden_layers
        if not 0 <= from_layer < total:
            raise ValueError(f"from_layer must lie in [0, {total - 1}], got {from_layer}")
        if pooling not in HEAD_POOLINGS:
            raise ValueError(f"pooling must be one of {HEAD_POOLINGS}, got {pooling!r}")
        self.config = encoder.config
        self.layers = copy.deepcopy(nn.ModuleList(encoder.encoder.layer[from_layer:]))
        self.pooler = copy.deepcopy(encoder.pooler) if pooling == "pooler" else None
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        if bias_init is not None:
            with torch.no_grad():
                self.classifier.bias.copy_(torch.as_tensor(bias_init, dtype=torch.float32))

    def encode(self, hidden, attention_mask):
        """The top layers' output (batch, tokens, hidden) for cached ``hidden`` states."""
        return _run_layers(self.layers, self.config, hidden, attention_mask)

    def forward(self, hidden, attention_mask):
        pooled = pool_hidden(self.encode(hidden, attention_mask), attention_mask, self.pooling, self)
        return self.classifier(self.dropout(pooled))


@torch.no_grad()
def predict_cached(model: TopLayersClassifier, cached: CachedStates, batch_size: int = 128) -> torch.Tensor:
    """Logits of ``model`` for every example of ``cached`` (eval mode, batches of similar length)."""
    model.eval()
    device = model.classifier.weight.device
    order = np.argsort([len(s) for s in cached.states], kind="stable")
    out = torch.empty(len(cached), model.classifier.out_features)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        hidden, mask = cached.batch(rows)
        out[torch.as_tensor(rows)] = model(hidden.to(device), mask.to(device)).float().cpu()
    return out


def train_top_layers(encoder, train: CachedStates, evaluation: CachedStates, *, steps: int,
                     batch_size: int = 16, lr: float = 1e-4, loss_fn: Callable | None = None,
                     pooling: str = "mean", seed: int = 0, eval_every: int = 50, progress: bool = False,
                     keep_logits: bool = False, group_by_length: bool = False) -> Run:
    """Partial fine-tuning: a fresh two-class :class:`TopLayersClassifier` (bias at the log class
    prior) on the layers above ``train.layer``, trained for ``steps`` mini-batches of cached states
    with the course's recipe (AdamW with ``training.decay_groups``' weight decay 0.01, linear
    warm-up over 10% of the steps and decay, gradients clipped at norm 1) and evaluated every
    ``eval_every`` steps on ``evaluation``. ``train`` may be
    :class:`LiveStates` (noise hooks on the embeddings). ``keep_logits`` keeps the evaluation
    logits of every evaluation in ``Run.snapshots`` (step -> logits), for early stopping.
    ``group_by_length`` batches examples of similar length together (less padding: faster)."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if train.layer != evaluation.layer:
        raise ValueError(f"train and evaluation states come from different layers "
                         f"({train.layer} and {evaluation.layer})")
    if train.labels is None or evaluation.labels is None:
        raise ValueError("both cached sets need labels")
    num_labels = 2
    y = _as_labels(train.labels, num_labels, "train labels")
    ey = _as_labels(evaluation.labels, num_labels, "evaluation labels")
    if steps < 1 or batch_size < 1 or lr <= 0 or eval_every < 1:
        raise ValueError("steps, batch_size, lr and eval_every must be positive")
    steps = env.training_steps(steps)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = next(encoder.parameters()).device
    model = TopLayersClassifier(encoder, train.layer, num_labels, pooling,
                                bias_init=log_prior_bias(y, num_labels)).to(device)
    optimizer = torch.optim.AdamW(decay_groups(model, 0.01), lr=lr, fused=True)
    warmup = int(0.1 * steps)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, steps)
    loss_fn = loss_fn or nn.functional.cross_entropy
    order = _batch_order(y, steps, batch_size, generator, False).view(steps, batch_size)
    if group_by_length:
        order = _group_by_length(order, train.lengths(), generator)
    curve, recent, snapshots = Curve(), [], {}
    for step in tqdm(range(1, steps + 1), desc="partial fine-tuning", disable=not progress):
        model.train()
        hidden, mask = train.batch(order[step - 1])
        loss = loss_fn(model(hidden.to(device), mask.to(device)), y[order[step - 1]].to(device))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        recent.append(loss.item())
        if step % eval_every == 0 or step == steps:
            logits = predict_cached(model, evaluation)
            curve.add(step, float(np.mean(recent)), evaluate_logits(logits, ey))
            if keep_logits:
                snapshots[step] = logits
            recent = []
    return Run(logits, evaluate_logits(logits, ey), curve, lambda cached: predict_cached(model, cached),
               snapshots)
