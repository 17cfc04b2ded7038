"""The feature cache: run the frozen encoder once over a dataset and keep the [CLS] and
mean-pooled vector of every layer, in memory and optionally on disk, keyed by the weights."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bert_workbook import env
from bert_workbook.training import _length_sorted_batches

POOLINGS = ("cls", "mean")


@dataclass
class FeatureSet:
    """Sentence vectors of every layer: ``cls[i, k]`` and ``mean[i, k]`` are example ``i``'s
    [CLS] vector and mean over real tokens after layer ``k`` (0 = the embeddings)."""

    cls: torch.Tensor
    mean: torch.Tensor
    labels: torch.Tensor | None
    pooler: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.cls)

    @property
    def num_layers(self) -> int:
        return self.cls.shape[1] - 1

    def get(self, pooling: str = "mean", layer: int = -1) -> torch.Tensor:
        """The (examples, hidden) features of one pooling and one layer (-1: the last);
        ``"pooler"`` is the pretrained pooler (dense + tanh) on the last layer's [CLS]."""
        if pooling == "pooler":
            if self.pooler is None:
                raise ValueError("this encoder has no pooler")
            return self.pooler
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not -self.cls.shape[1] <= layer < self.cls.shape[1]:
            raise ValueError(f"layer must lie in [0, {self.num_layers}] (or count from -1), got {layer}")
        return (self.cls if pooling == "cls" else self.mean)[:, layer]


_FEATURE_CACHE: dict[str, FeatureSet] = {}


def dataset_key(model_name: str, dataset) -> str:
    """A digest of ``model_name`` (any string: the cache passes the weights' digest) and every token
    id of a tokenized dataset: the cache key."""
    digest = hashlib.sha256(model_name.encode())
    for ids in dataset["input_ids"]:
        digest.update(np.asarray(ids, dtype=np.int32).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def weights_digest(model) -> str:
    """A digest of every parameter and buffer of ``model``: equal digests, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _disk_path(kind: str, encoder, dataset, cache_dir, *extra) -> Path | None:
    """Where a frozen computation of ``encoder`` on ``dataset`` is kept on disk (``cache_dir``, or
    the folder of ``env.cache_dir()``), or None without a folder. The name holds the encoder's
    weights digest and the token ids' digest, so changed weights or inputs never read stale files."""
    folder = Path(cache_dir) if cache_dir is not None else env.cache_dir()
    if folder is None:
        return None
    key = dataset_key(weights_digest(encoder) + "".join(f"-{x}" for x in extra), dataset)
    return folder / f"{kind}-{key}.pt"


def _save(path: Path | None, value: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(value, partial)
        partial.replace(path)  # atomic: a reader in another process never sees half a file


@torch.no_grad()
def encode_features(encoder, dataset, tokenizer, *, batch_size: int = 64,
                    cache_dir: str | Path | None = None, progress: bool = False) -> FeatureSet:
    """Run the frozen ``encoder`` once over a tokenized ``dataset`` and return every layer's [CLS]
    and mean-pooled vectors (a :class:`FeatureSet`, in the dataset's order).

    Results are kept in memory, and on disk in ``cache_dir`` (or the folder of ``env.cache_dir()``)
    when there is one, under the encoder's weights (:func:`weights_digest`) and the token ids: an
    encoder whose weights changed is encoded afresh, whatever its name."""
    from tqdm.auto import tqdm

    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    key = dataset_key(f"{weights_digest(encoder)}-{batch_size}", dataset)
    if key in _FEATURE_CACHE:
        return _FEATURE_CACHE[key]
    path = _disk_path("features", encoder, dataset, cache_dir, batch_size)
    if path is not None and path.exists():
        _FEATURE_CACHE[key] = FeatureSet(**torch.load(path))
        return _FEATURE_CACHE[key]
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    loader, unsort = _length_sorted_batches(dataset, tokenizer, batch_size, longest_first=True)
    cls, mean, pooled = [], [], []
    pooler = getattr(encoder, "pooler", None)
    for batch in tqdm(loader, desc="encoding", disable=not progress):
        batch.pop("labels", None)
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = torch.stack(encoder(**batch, output_hidden_states=True).hidden_states, 1)
        mask = batch["attention_mask"][:, None, :, None].to(hidden.dtype)
        cls.append(hidden[:, :, 0].float().cpu().clone())  # a copy: a view would keep the whole batch alive
        mean.append(((hidden * mask).sum(2) / mask.sum(2)).float().cpu())
        if pooler is not None:
            pooled.append(pooler(hidden[:, -1]).float().cpu())
    encoder.train(was_training)
    labels = (torch.as_tensor(list(dataset["label"]), dtype=torch.long)
              if "label" in dataset.column_names else None)
    features = FeatureSet(torch.cat(cls)[unsort], torch.cat(mean)[unsort], labels,
                          torch.cat(pooled)[unsort] if pooled else None)
    del cls, mean, pooled
    env.release_memory()
    _FEATURE_CACHE[key] = features
    _save(path, features.__dict__)
    return features


def clear_feature_cache() -> None:
    """Forget every feature set kept in memory."""
    _FEATURE_CACHE.clear()
