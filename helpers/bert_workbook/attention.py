"""Self-attention and one encoder layer, rebuilt by hand from a BERT model's own weights.

Notebook 03 follows the input vectors into the first encoder layer: queries, keys and values,
the split into heads, scaled dot-product scores, the padding mask, the softmax, the weighted sum,
the merge of the heads, the output projection with its residual and LayerNorm, then the
feed-forward block with its own. Every step here is written out so that the notebook can compare
it with the model (``encoder_layer_by_hand``) and measure what the heads attend to
(``attention_maps``, ``attention_shares``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from bert_workbook.arguments import (
    check_count,
    check_model,
    check_same_shape,
    check_texts,
    check_tokenizer,
)

MASKED = float("-inf")  # what a padding key adds to the scores before the softmax


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(batch, length, hidden)`` -> ``(batch, heads, length, hidden // heads)``."""
    if x.dim() != 3:
        raise ValueError(f"expected (batch, length, hidden), got shape {tuple(x.shape)}")
    batch, length, hidden = x.shape
    if not isinstance(num_heads, int) or num_heads < 1 or hidden % num_heads:
        raise ValueError(f"num_heads must be a positive int dividing the width {hidden}, got {num_heads!r}")
    return x.view(batch, length, num_heads, hidden // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(batch, heads, length, d)`` -> ``(batch, length, heads * d)``: the heads side by side."""
    if x.dim() != 4:
        raise ValueError(f"expected (batch, heads, length, d), got shape {tuple(x.shape)}")
    batch, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * d)


def key_padding_bias(attention_mask, dtype=torch.float32) -> torch.Tensor:
    """The tokenizer's ``(batch, length)`` mask (1 real, 0 padding) as an additive bias of shape
    ``(batch, 1, 1, length)``: 0 for real keys, -inf for padding keys, the same for every head and
    every query."""
    mask = torch.as_tensor(attention_mask)
    if mask.dim() != 2:
        raise ValueError(f"attention_mask must be (batch, length), got shape {tuple(mask.shape)}")
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask == 0, MASKED)
    return bias[:, None, None, :]


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attention_mask=None, return_weights: bool = False):
    """``softmax(q kᵀ / √d + mask) v`` for ``(batch, heads, length, d)`` tensors.

    ``attention_mask`` ``(batch, length)``: 1 for real tokens, 0 for padding; a padding *key*
    gets -inf before the softmax, so no query attends to it. A sequence with no real token at
    all gets zeros, as ``torch.nn.functional.scaled_dot_product_attention`` returns.
    ``return_weights`` also returns the attention weights ``(batch, heads, length, length)``."""
    if not (q.dim() == k.dim() == v.dim() == 4):
        raise ValueError("q, k and v must be (batch, heads, length, d) tensors")
    if attention_mask is not None:
        shape = tuple(torch.as_tensor(attention_mask).shape)
        if len(shape) != 2 or shape[1] != k.shape[2] or shape[0] not in (1, k.shape[0]):
            raise ValueError(f"attention_mask has shape {shape}, but the keys need (batch, length) = "
                             f"{(k.shape[0], k.shape[2])}: one entry per token")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attention_mask is not None:
        scores = scores + key_padding_bias(attention_mask, scores.dtype).to(scores.device)
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all keys padding: 0/0 -> 0
    out = weights @ v
    return (out, weights) if return_weights else out


def _check_layer(layer) -> None:
    """A TypeError unless ``layer`` is one BERT encoder layer (attention, intermediate, output)."""
    if not all(hasattr(layer, part) for part in ("attention", "intermediate", "output")):
        raise TypeError(f"layer must be one BERT encoder layer, e.g. model.encoder.layer[0], got "
                        f"{type(layer).__name__}")


def project_heads(layer, hidden: torch.Tensor):
    """A BERT layer's queries, keys and values for ``hidden``, split into heads: three
    ``(batch, heads, length, d)`` tensors."""
    _check_layer(layer)
    self_attention = layer.attention.self
    heads = self_attention.num_attention_heads
    return tuple(split_heads(projection(hidden), heads)
                 for projection in (self_attention.query, self_attention.key, self_attention.value))


def encoder_layer_by_hand(layer, hidden: torch.Tensor, attention_mask=None) -> dict[str, torch.Tensor]:
    """One BERT encoder ``layer`` (e.g. ``model.encoder.layer[0]``) computed step by step from
    its weights, as in eval mode (no dropout). Returns the named steps: ``q``, ``k``, ``v``
    (per head), ``weights`` (attention), ``context`` (heads merged), ``attention output``
    (after the output projection, residual and LayerNorm) and ``output`` (after the
    feed-forward block, its residual and LayerNorm): the layer's output."""
    _check_layer(layer)
    attention_output = layer.attention.output
    q, k, v = project_heads(layer, hidden)
    per_head, weights = scaled_dot_product_attention(q, k, v, attention_mask, return_weights=True)
    context = merge_heads(per_head)
    after_attention = attention_output.LayerNorm(attention_output.dense(context) + hidden)
    output = layer.output.LayerNorm(feed_forward(layer, after_attention) + after_attention)
    return {"q": q, "k": k, "v": v, "weights": weights, "context": context,
            "attention output": after_attention, "output": output}


@torch.no_grad()
def attention_maps(encoder, input_ids, attention_mask) -> torch.Tensor:
    """Every layer's attention weights for a batch, ``(layers, batch, heads, length, length)``,
    recomputed by hand from the hidden states that enter each layer (eval mode)."""
    check_model(encoder, "encoder")
    if attention_mask is not None:
        check_same_shape("attention_mask", torch.as_tensor(attention_mask), "input_ids", torch.as_tensor(input_ids))
    encoder.eval()
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
    maps = []
    for layer, entering in zip(encoder.encoder.layer, hidden[:-1]):
        q, k, v = project_heads(layer, entering)
        maps.append(scaled_dot_product_attention(q, k, v, attention_mask, return_weights=True)[1])
    return torch.stack(maps)


ATTENTION_TARGETS = ("[CLS]", "[SEP]", "itself", "previous token", "next token")


def attention_shares(maps: torch.Tensor, input_ids, attention_mask, cls_id: int, sep_id: int) -> torch.Tensor:
    """For each layer and head, the share of attention that real query tokens give to each of
    ``ATTENTION_TARGETS``: ``(layers, heads, 5)``, averaged over every real query token.
    ``maps`` comes from :func:`attention_maps`."""
    ids = torch.as_tensor(input_ids)
    real = torch.as_tensor(attention_mask).bool()
    check_same_shape("attention_mask", real, "input_ids", ids)
    if maps.dim() != 5 or maps.shape[1] != ids.shape[0] or maps.shape[-1] != ids.shape[1]:
        raise ValueError(f"maps of shape {tuple(maps.shape)} do not match input_ids {tuple(ids.shape)}")
    length = ids.shape[1]
    position = torch.arange(length)
    targets = [
        (ids == cls_id)[:, None, :].expand(-1, length, -1),  # (batch, query, key)
        (ids == sep_id)[:, None, :].expand(-1, length, -1),
        (position[:, None] == position[None, :]).expand(ids.shape[0], -1, -1),
        (position[:, None] - 1 == position[None, :]).expand(ids.shape[0], -1, -1),
        (position[:, None] + 1 == position[None, :]).expand(ids.shape[0], -1, -1),
    ]
    queries = real.sum()
    shares = [(maps * target[None, :, None].to(maps.dtype)).sum(-1)  # (layers, batch, heads, query)
              .mul(real[None, :, None, :]).sum((1, 3)) / queries for target in targets]
    return torch.stack(shares, dim=-1)


def attention_shares_over(encoder, tokenizer, texts, max_length: int = 64, batch_size: int = 50,
                          progress: bool = False) -> torch.Tensor:
    """:func:`attention_shares` over many ``texts``, in batches: ``(layers, heads, 5)``, the mean
    over every real query token of every text."""
    from tqdm.auto import tqdm

    check_model(encoder, "encoder")
    check_tokenizer(tokenizer)
    check_texts(texts)
    if len(texts) == 0:
        raise ValueError("texts must be a non-empty list of strings")
    check_count(batch_size, "batch_size")
    check_count(max_length, "max_length")
    total, queries = None, 0
    for start in tqdm(range(0, len(texts), batch_size), desc="attention maps", disable=not progress):
        batch = tokenizer(list(texts[start:start + batch_size]), truncation=True, max_length=max_length,
                          padding=True, return_tensors="pt")
        maps = attention_maps(encoder, batch["input_ids"], batch["attention_mask"])
        n = int(batch["attention_mask"].sum())
        shares = attention_shares(maps, batch["input_ids"], batch["attention_mask"],
                                  tokenizer.cls_token_id, tokenizer.sep_token_id) * n
        total = shares if total is None else total + shares
        queries += n
    return total / queries


def feed_forward(layer, x: torch.Tensor) -> torch.Tensor:
    """A BERT layer's feed-forward block without its residual and LayerNorm: expand to the
    intermediate width, activate (GELU), project back."""
    return layer.output.dense(layer.intermediate.intermediate_act_fn(layer.intermediate.dense(x)))


def time_attention_and_feed_forward(layer, lengths, min_run_time: float = 0.2) -> list[dict]:
    """Seconds per forward pass of one layer's attention core (scores, softmax, weighted sum, all
    heads) and of its feed-forward block, on one random sequence of each of ``lengths`` tokens
    (``torch.utils.benchmark``, no gradients)."""
    from torch.utils import benchmark

    _check_layer(layer)
    if isinstance(lengths, str) or not isinstance(lengths, Iterable):
        raise TypeError(f"lengths must be a list of sequence lengths, e.g. [64, 128], got {lengths!r:.40}")
    for length in lengths:
        check_count(length, "each of lengths")
    self_attention = layer.attention.self
    heads = self_attention.num_attention_heads
    width = self_attention.query.in_features
    rows = []
    for length in lengths:
        x = torch.randn(1, length, width)
        q = k = v = split_heads(x, heads)
        with torch.no_grad():
            timed = {
                "attention (scores, softmax, sum)": benchmark.Timer(
                    "f(q, k, v)", globals={"f": scaled_dot_product_attention, "q": q, "k": k, "v": v}),
                "feed-forward block": benchmark.Timer("f(layer, x)", globals={"f": feed_forward, "layer": layer, "x": x}),
            }
            for part, timer in timed.items():
                rows.append({"tokens": length, "part": part,
                             "seconds": timer.blocked_autorange(min_run_time=min_run_time).median})
    return rows


def attention_explorer(encoder, tokenizer, text: str, layer: int = 0, head: int = 0):
    """A widget: a sentence, a layer and a head; shows who attends to whom as a colored table
    (row: the query token, column: the key token, darker: more weight)."""
    import html

    import ipywidgets as widgets

    from bert_workbook.widgets import Explorer

    config = encoder.config
    sentence = widgets.Text(value=text, description="Sentence", layout={"width": "90%"})
    layer_slider = widgets.IntSlider(value=layer, min=0, max=config.num_hidden_layers - 1, description="layer")
    head_slider = widgets.IntSlider(value=head, min=0, max=config.num_attention_heads - 1, description="head")
    view = widgets.HTML()

    def update(_change=None) -> None:
        try:
            batch = tokenizer(sentence.value, truncation=True, max_length=48, return_tensors="pt")
            weights = attention_maps(encoder, batch["input_ids"], batch["attention_mask"])
        except Exception as error:  # show the problem in the widget rather than losing it
            view.value = f"<b>Cannot compute attention:</b> {html.escape(str(error))}"
            return
        grid = weights[layer_slider.value, 0, head_slider.value]
        tokens = [html.escape(t) for t in tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())]
        cell = 'style="padding:1px 3px;font-family:monospace;font-size:11px;background:rgba(37,99,235,{:.2f})"'
        header = "".join(f'<th style="font-size:10px;writing-mode:vertical-rl">{t}</th>' for t in tokens)
        body = "".join(f"<tr><th style='font-size:11px;text-align:right'>{t}</th>"
                       + "".join(f"<td {cell.format(float(w))} title='{float(w):.2f}'></td>" for w in row)
                       + "</tr>" for t, row in zip(tokens, grid))
        view.value = f"<table style='border-collapse:collapse'><tr><th></th>{header}</tr>{body}</table>"

    for control in (sentence, layer_slider, head_slider):
        control.observe(update, names="value")
    update()
    return Explorer([sentence, widgets.HBox([layer_slider, head_slider]), view])
