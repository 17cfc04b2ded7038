"""Noise on input embeddings during training, added by a forward hook on the embedding layer:
the weights never change, and in eval mode the hook does nothing. (Adding noise to the
weights themselves, in place, drifts the model for good.)"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _check_embedding(embedding) -> None:
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"embedding must be the token embedding layer (an nn.Embedding, e.g. "
                        f"model.embeddings.word_embeddings), got {type(embedding).__name__}")


def _random_like(output: torch.Tensor, generator: torch.Generator | None, uniform: bool) -> torch.Tensor:
    device = generator.device if generator is not None else output.device
    draw = torch.rand if uniform else torch.randn
    noise = draw(output.shape, generator=generator, device=device, dtype=output.dtype)
    return (noise * 2 - 1 if uniform else noise).to(output.device)


def add_frequent_token_noise(embedding: nn.Embedding, token_ids: Sequence[int], std: float,
                             generator: torch.Generator | None = None):
    """Gaussian noise (standard deviation ``std``) on the embeddings of the listed token ids
    only, in training mode only. Returns the hook handle: ``handle.remove()`` switches it off."""
    _check_embedding(embedding)
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a finite number > 0, got {std!r}")
    if isinstance(token_ids, str) or any(isinstance(i, str) for i in token_ids):
        raise TypeError("token_ids must be token ids (ints), not strings: convert words first, e.g. "
                        "tokenizer.convert_tokens_to_ids(words)")
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    if ids.ndim != 1 or len(ids) == 0:
        raise ValueError("token_ids must be a non-empty list of token ids")
    if ids.min() < 0 or ids.max() >= embedding.num_embeddings:
        raise ValueError(f"token ids must lie in [0, {embedding.num_embeddings}); "
                         f"got {ids.min().item()}..{ids.max().item()}")

    def hook(module, inputs, output):
        if not module.training:
            return output
        selected = torch.isin(inputs[0], ids.to(inputs[0].device)).unsqueeze(-1)
        return output + std * _random_like(output, generator, uniform=False) * selected

    return embedding.register_forward_hook(hook)


def add_neftune_noise(embedding: nn.Embedding, alpha: float = 5.0,
                      generator: torch.Generator | None = None):
    """NEFTune (Jain et al., 2023): uniform noise in ``[-1, 1]`` scaled by
    ``alpha / sqrt(L * d)`` (``L`` tokens per sequence, ``d`` dimensions) on every token's
    embedding, in training mode only. Returns the hook handle."""
    _check_embedding(embedding)
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")

    def hook(module, inputs, output):
        if not module.training:
            return output
        scale = alpha / math.sqrt(output.shape[-2] * output.shape[-1])
        return output + scale * _random_like(output, generator, uniform=True)

    return embedding.register_forward_hook(hook)
