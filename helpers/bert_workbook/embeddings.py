"""BERT's input embeddings, by hand, and tools to look at embedding vectors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bert_workbook.arguments import check_config, check_count, check_model, check_tokenizer
from bert_workbook.wordpiece import split_into_words


def _check_vectors(vectors, rows: int) -> None:
    """A TypeError unless ``vectors`` is a tensor; a ValueError unless it is 2-d (one vector per
    row) with at least ``rows`` rows."""
    if not isinstance(vectors, torch.Tensor):
        raise TypeError(f"vectors must be a torch tensor (one vector per row), got {type(vectors).__name__}: "
                        "convert it with torch.as_tensor")
    if vectors.dim() != 2 or len(vectors) < rows:
        least = f" with at least {rows} rows" if rows else ""
        raise ValueError(f"vectors must be a 2-d tensor (one vector per row){least}, got shape {tuple(vectors.shape)}")


def _embedding_module(model):
    """The ``BertEmbeddings``-like module of a model, or the module itself."""
    module = getattr(model, "embeddings", None) or getattr(getattr(model, "bert", None), "embeddings", None)
    module = module or model
    for part in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"):
        if not hasattr(module, part):
            raise TypeError(f"model must be a BERT model or its embeddings module; this {type(model).__name__} "
                            f"has no {part!r}")
    return module


def check_embedding_inputs(module, input_ids: torch.Tensor,
                           token_type_ids: torch.Tensor | None) -> torch.Tensor:
    """Validate ids against the embedding tables; return token_type_ids (zeros if None)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype != torch.long:
        raise TypeError("input_ids must be a torch.long tensor")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
    vocab = module.word_embeddings.num_embeddings
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab):
        raise ValueError(f"input_ids must lie in [0, {vocab}), got values from "
                         f"{int(input_ids.min())} to {int(input_ids.max())}")
    max_length = module.position_embeddings.num_embeddings
    if input_ids.shape[1] > max_length:
        raise ValueError(f"sequence length {input_ids.shape[1]} exceeds the {max_length} learned "
                         f"positions of this model: truncate (e.g. tokenizer(..., truncation=True))")
    if token_type_ids is None:
        return torch.zeros_like(input_ids)
    if token_type_ids.shape != input_ids.shape:
        raise ValueError(f"token_type_ids has shape {tuple(token_type_ids.shape)}, input_ids has "
                         f"{tuple(input_ids.shape)}: they must match")
    types = module.token_type_embeddings.num_embeddings
    if token_type_ids.numel() and (token_type_ids.min() < 0 or token_type_ids.max() >= types):
        raise ValueError(f"token_type_ids must lie in [0, {types})")
    return token_type_ids


def build_input_embeddings(model, input_ids: torch.Tensor,
                           token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
    """BERT's input vectors from the model's own tables, by hand (eval mode: no dropout):

    ``LayerNorm(word[input_ids] + segment[token_type_ids] + position[0, 1, ..., length - 1])``.
    """
    module = _embedding_module(model)
    if hasattr(module, "padding_idx") or getattr(getattr(model, "config", None), "model_type", "bert") in (
            "roberta", "xlm-roberta", "camembert"):
        raise ValueError("this is a RoBERTa-style model: it numbers positions from padding_idx + 1 and skips "
                         "padding, so BERT's positions 0, 1, 2, ... would give wrong vectors; use a BERT model")
    token_type_ids = check_embedding_inputs(module, input_ids, token_type_ids)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    summed = (module.word_embeddings.weight[input_ids]
              + module.token_type_embeddings.weight[token_type_ids]
              + module.position_embeddings.weight[positions])
    return module.LayerNorm(summed)


def embedding_table_sizes(config) -> list[dict]:
    """Each input-embedding table of a BERT config: rows, width and parameter count."""
    check_config(config)
    hidden = config.hidden_size
    tables = [
        ("token (WordPiece)", config.vocab_size),
        ("segment (token type)", config.type_vocab_size),
        ("position", config.max_position_embeddings),
    ]
    rows = [{"table": name, "rows": n, "width": hidden, "parameters": n * hidden} for name, n in tables]
    rows.append({"table": "LayerNorm (scale, shift)", "rows": 2, "width": hidden, "parameters": 2 * hidden})
    return rows


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """The fixed sine/cosine position table of the original Transformer (Vaswani et al., 2017)."""
    if length < 1 or width < 2 or width % 2:
        raise ValueError("length must be >= 1 and width a positive even number")
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def cosine_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarities of the rows of a 2-d tensor."""
    _check_vectors(vectors, rows=0)
    unit = torch.nn.functional.normalize(vectors.float(), dim=1)
    return unit @ unit.T


def word_vectors_by_layer(model, tokenizer, sentence: str, word: str) -> torch.Tensor:
    """The vectors of ``word`` in ``sentence`` after each layer, shape (layers + 1, hidden).

    Layer 0 is the input embedding. A word split into several pieces is the mean of its pieces.
    The first occurrence of the word is used.
    """
    check_model(model)
    check_tokenizer(tokenizer)
    for name, value in (("sentence", sentence), ("word", word)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    encoded = tokenizer(sentence, return_tensors="pt")
    words = split_into_words(tokenizer, sentence)
    if word.lower() not in words:
        raise ValueError(f"{word!r} is not a word of {sentence!r}")
    index = words.index(word.lower())
    positions = [i for i, w in enumerate(encoded.word_ids()) if w == index]
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(**{k: v.to(device) for k, v in encoded.items()}, output_hidden_states=True)
    return torch.stack([layer[0, positions].mean(dim=0).cpu() for layer in out.hidden_states])


def mean_pairwise_cosine(vectors: torch.Tensor, pairs: int = 5000,
                         generator: torch.Generator | None = None) -> float:
    """Mean cosine similarity between randomly drawn pairs of distinct rows: 0 for directions
    spread evenly (isotropic), near 1 when all vectors point the same way (anisotropic)."""
    return float(cosine_by_dimension(vectors, pairs, generator).sum())


def z_score(vectors: torch.Tensor) -> torch.Tensor:
    """Standardize each dimension over the rows (mean 0, standard deviation 1)."""
    _check_vectors(vectors, rows=2)
    mean, std = vectors.mean(dim=0), vectors.std(dim=0)
    return (vectors - mean) / std.clamp_min(1e-12)


def next_sentence_pairs(documents: Sequence[Sequence[str]], n: int,
                        generator: torch.Generator | None = None) -> list[tuple[str, str, str]]:
    """``n`` sentence pairs ``(A, B, label)`` as BERT's next-sentence prediction drew them:
    half the time B follows A in the same document (IsNext), half the time B is a sentence from
    another document (NotNext)."""
    if isinstance(documents, str) or any(isinstance(doc, str) for doc in documents):
        raise TypeError("documents must be a list of documents, each a list of sentences (e.g. "
                        "[split_sentences(text) for text in texts]), not strings: a string would be read "
                        "as a list of one-character sentences")
    check_count(n, "n", minimum=0)
    if len(documents) < 2:
        raise ValueError("need at least two documents, to draw NotNext sentences from another one")
    usable = [i for i, doc in enumerate(documents) if len(doc) >= 2]
    if not usable:
        raise ValueError("need a document with at least two sentences")
    pairs = []
    for _ in range(n):
        doc = usable[int(torch.randint(len(usable), (1,), generator=generator))]
        start = int(torch.randint(len(documents[doc]) - 1, (1,), generator=generator))
        first = documents[doc][start]
        if float(torch.rand(1, generator=generator)) < 0.5:
            pairs.append((first, documents[doc][start + 1], "IsNext"))
        else:
            other = int(torch.randint(len(documents) - 1, (1,), generator=generator))
            other += other >= doc  # any document but this one
            sentences = documents[other]
            pick = int(torch.randint(len(sentences), (1,), generator=generator))
            pairs.append((first, sentences[pick], "NotNext"))
    return pairs


def cosine_by_dimension(vectors: torch.Tensor, pairs: int = 5000,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Each dimension's share of the mean pairwise cosine: for unit vectors u, v the cosine is
    the sum over dimensions of u_d * v_d, so this returns the mean of u_d * v_d over random
    pairs of distinct rows (it sums to :func:`mean_pairwise_cosine` with the same generator)."""
    _check_vectors(vectors, rows=2)
    check_count(pairs, "pairs")
    first = torch.randint(len(vectors), (pairs,), generator=generator)
    offset = torch.randint(1, len(vectors), (pairs,), generator=generator)
    second = (first + offset) % len(vectors)
    unit = torch.nn.functional.normalize(vectors.float(), dim=1)
    return (unit[first] * unit[second]).mean(dim=0)


def pca_2d(vectors: torch.Tensor) -> torch.Tensor:
    """Project rows onto their first two principal components (centred; deterministic signs)."""
    _check_vectors(vectors, rows=3)
    centred = vectors.float() - vectors.float().mean(dim=0)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)
    components = components[:2]
    signs = torch.sign(components[torch.arange(2), components.abs().argmax(dim=1)])
    return centred @ (components * signs[:, None]).T
