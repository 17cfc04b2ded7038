"""Argument checks that the course's modules share: a bad call gets an error that names the
argument (``TypeError`` for the wrong kind of object, ``ValueError`` for a wrong number or shape)
instead of an error from deep inside transformers, or a silent wrong result."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import torch


def _shown(value) -> str:
    """``value`` for an error message: short values as they are, others by their type."""
    text = repr(value)
    return text if isinstance(value, (numbers.Number, str, type(None))) and len(text) <= 40 else type(value).__name__


def _is_tokenizer(value) -> bool:
    return (not isinstance(value, torch.nn.Module) and callable(value)
            and hasattr(value, "convert_ids_to_tokens"))


def check_tokenizer(tokenizer, name: str = "tokenizer") -> None:
    """A TypeError naming ``name`` unless ``tokenizer`` is a Hugging Face tokenizer."""
    if not _is_tokenizer(tokenizer):
        swapped = isinstance(tokenizer, torch.nn.Module)
        raise TypeError(f"{name} must be a tokenizer (e.g. assets.load_tokenizer()), got {type(tokenizer).__name__}"
                        + (": is it the model? Check the order of the arguments" if swapped else ""))


def check_model(model, name: str = "model") -> None:
    """A TypeError naming ``name`` unless ``model`` is a PyTorch module."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{name} must be a model (a torch.nn.Module), got {type(model).__name__}"
                        + (": is it the tokenizer? Check the order of the arguments" if _is_tokenizer(model) else ""))


def check_config(config, name: str = "config") -> None:
    """A TypeError naming ``name`` unless ``config`` is a model configuration."""
    if isinstance(config, torch.nn.Module) or not (hasattr(config, "model_type") and hasattr(config, "to_dict")):
        raise TypeError(f"{name} must be a model configuration (model.config, or family.family_config(name) "
                        f"for a model of the family), got {_shown(config)}")


def check_texts(texts, name: str = "texts") -> None:
    """A TypeError naming ``name`` if ``texts`` is one string (or no collection at all) where a
    sequence of strings belongs: iterating over one string would treat each character as a text."""
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        got = "one string" if isinstance(texts, str) else _shown(texts)
        raise TypeError(f"{name} must be a sequence of strings, not {got}: put a single string in a list")


def check_token_ids(ids, name: str = "input_ids") -> None:
    """A TypeError naming ``name`` unless ``ids`` is an integer tensor (token ids)."""
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        got = f"a {ids.dtype} tensor" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"{name} must be a tensor of token ids (integers), got {got}")


def check_count(value, name: str, minimum: int = 1) -> None:
    """A ValueError naming ``name`` unless ``value`` is an int (Python or NumPy, not a bool) of at
    least ``minimum``: a batch size, a number of steps, a seed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {_shown(value)}")


def check_probability(value, name: str) -> None:
    """A ValueError naming ``name`` unless ``value`` is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {_shown(value)}")


def check_same_shape(name: str, value: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    """A ValueError naming ``name`` unless ``value`` has the shape of ``other`` (e.g. labels and
    input ids, an attention mask and input ids)."""
    if tuple(value.shape) != tuple(other.shape):
        raise ValueError(f"{name} has shape {tuple(value.shape)} but {other_name} has {tuple(other.shape)}: "
                         "they must match, one entry per token")
