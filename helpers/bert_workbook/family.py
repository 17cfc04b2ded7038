"""The encoder family on one bench: configurations, exact parameter counts and forward speed.

Every model here is built from its configuration alone, so nothing is downloaded: on PyTorch's
``meta`` device for counting (no memory at all) or with random weights for timing. Random weights
compute exactly as fast as trained ones, so the speed figures hold for the real models; their
*outputs* mean nothing, and no accuracy is measured with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from bert_workbook import env
from bert_workbook.arguments import check_config, check_count, check_model
from bert_workbook.timing import fastest_seconds


@dataclass(frozen=True)
class Member:
    """One model of the family: how to build its configuration offline (the published base
    checkpoint's config.json on the Hugging Face Hub, written out), and what its authors
    published about it (cited, not measured here)."""

    config_class: str
    config_arguments: dict = field(default_factory=dict)
    published_millions: float | None = None  # parameters, as published
    parameters_source: str = ""
    mnli: float | None = None  # MNLI matched accuracy (%), as published
    mnli_source: str = "not cited here"


MEMBERS: dict[str, Member] = {
    "BERT-base": Member("BertConfig", {}, 110, "Devlin et al. 2019, BERT",
                        84.6, "test set; Devlin et al. 2019, Table 1"),
    "RoBERTa-base": Member("RobertaConfig", dict(vocab_size=50265, max_position_embeddings=514,
                                                 type_vocab_size=1, pad_token_id=1, bos_token_id=0,
                                                 eos_token_id=2, layer_norm_eps=1e-5),
                           125, "Liu et al. 2019, RoBERTa",
                           87.6, "dev set; DeBERTa-v3-base model card (from Liu et al. 2019)"),
    "DistilBERT": Member("DistilBertConfig", {}, 66, "Sanh et al. 2019, DistilBERT",
                         82.2, "dev set; Sanh et al. 2019, Table 1"),
    "ALBERT-base-v2": Member("AlbertConfig", dict(vocab_size=30000, embedding_size=128, hidden_size=768,
                                                  num_hidden_layers=12, num_attention_heads=12,
                                                  intermediate_size=3072, hidden_act="gelu_new"),
                             12, "Lan et al. 2020, ALBERT",
                             84.6, "dev set; ALBERT repository README, v2 models"),
    "DeBERTa-base": Member("DebertaConfig", dict(vocab_size=50265, relative_attention=True,
                                                 max_relative_positions=-1, pos_att_type=["c2p", "p2c"],
                                                 position_biased_input=False, type_vocab_size=0,
                                                 layer_norm_eps=1e-7),
                           140, "He et al. 2021, DeBERTa (the lecture notes' figure)",
                           88.8, "dev set; DeBERTa-v3-base model card"),
    "DeBERTa-v3-base": Member("DebertaV2Config", dict(vocab_size=128100, hidden_size=768,
                                                      num_hidden_layers=12, num_attention_heads=12,
                                                      intermediate_size=3072, relative_attention=True,
                                                      position_buckets=256, norm_rel_ebd="layer_norm",
                                                      share_att_key=True, pos_att_type=["p2c", "c2p"],
                                                      max_relative_positions=-1, type_vocab_size=0,
                                                      position_biased_input=False, layer_norm_eps=1e-7),
                              184, "DeBERTa-v3-base model card: 86M backbone + 98M embeddings",
                              90.6, "dev set; DeBERTa-v3-base model card"),
    # the discriminator; the library default is "small"
    "ELECTRA-small": Member("ElectraConfig", {}, 14, "Clark et al. 2020, ELECTRA"),
    "ELECTRA-base": Member("ElectraConfig", dict(embedding_size=768, hidden_size=768,
                                                 num_attention_heads=12, intermediate_size=3072),
                           110, "Clark et al. 2020, ELECTRA",
                           88.8, "dev set; DeBERTa-v3-base model card (from Clark et al. 2020)"),
    # the library default is the base model
    "ModernBERT-base": Member("ModernBertConfig", {}, 149, "Warner et al. 2024, ModernBERT"),
}
"""The family, in the order of the course's tables: one entry per model, everything the course
knows about it in one place."""

FAMILY = tuple(MEMBERS)
"""The models this module knows, in the order of the course's tables."""

PUBLISHED_PARAMETERS: dict[str, tuple[float, str]] = {
    name: (m.published_millions, m.parameters_source) for name, m in MEMBERS.items()}
"""Parameter counts as their authors published them, in millions, with where they come from."""


def family_config(name: str):
    """The configuration of one family member (see ``FAMILY``), built offline."""
    import transformers

    if name not in MEMBERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(FAMILY)}")
    member = MEMBERS[name]
    return getattr(transformers, member.config_class)(**member.config_arguments)


def architecture(config) -> dict:
    """What a configuration says about the architecture, under the same names for every family:
    layers, hidden width, heads, feed-forward width, vocabulary, token-embedding width, how
    positions enter, how many segment (token type) embeddings, and whether layers share weights."""
    check_config(config)
    kind = config.model_type
    if kind in ("deberta", "deberta-v2"):
        positions = "relative (disentangled attention)"
    elif kind == "modernbert":
        positions = f"rotary, up to {config.max_position_embeddings:,}"
    else:
        positions = f"learned absolute, {config.max_position_embeddings:,}"
    ffn = config.hidden_dim if kind == "distilbert" else config.intermediate_size
    return {
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "heads": config.num_attention_heads,
        "feed-forward": ffn,
        "vocabulary": config.vocab_size,
        "token embedding width": getattr(config, "embedding_size", None) or config.hidden_size,
        "positions": positions,
        "segments": getattr(config, "type_vocab_size", 0) or 0,
        "layers share weights": kind == "albert" and config.num_hidden_groups == 1,
    }


def build_model(config, device: str | torch.device = "meta"):
    """The bare encoder (``AutoModel``) for ``config``: on the ``meta`` device by default, where
    parameters have shapes but no storage (for counting), or with random weights on a real device
    (for timing), in eval mode. In a smoke test (``env.smoke_test()``) a model on a real device
    keeps one layer: that run proves the code works, and drawing the random weights of twelve
    layers is most of its time.

    On a real device the weights are drawn by :func:`random_weights`, not by each architecture's
    own initializer (ModernBERT's truncated normal takes 10 s on two CPU cores): the values of the
    weights do not change the time of a forward pass. Buffers (position ids, rotary frequencies)
    are still set by the model's own code."""
    from transformers import AutoModel

    check_config(config)
    if torch.device(device).type == "meta":
        with torch.device(device):
            return AutoModel.from_config(config).eval()
    if env.smoke_test():
        config = one_layer(config)
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # another transformers: its own initializer, slower but the same model
        with torch.device(device):
            return AutoModel.from_config(config).eval()
    with torch.device(device), no_init_weights():
        model = AutoModel.from_config(config)
    random_weights(model)
    model.init_weights()  # what is left for it to set: the buffers
    return model.eval()


@torch.no_grad()
def random_weights(model, std: float = 0.02, seed: int = 0) -> None:
    """Fill every parameter of ``model`` with uniform noise of standard deviation ``std`` (BERT's
    initializer range), drawn from ``seed``, and mark it initialized, so that Hugging Face's
    ``init_weights`` leaves it alone and sets only what remains."""
    check_model(model)
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    generator = torch.Generator().manual_seed(seed)
    bound = std * 3 ** 0.5  # a uniform on [-b, b] has standard deviation b / sqrt(3)
    for parameter in model.parameters():
        values = torch.empty(parameter.shape).uniform_(-bound, bound, generator=generator)
        parameter.copy_(values)
        parameter._is_hf_initialized = True


def one_layer(config):
    """A copy of ``config`` with a single layer (and a single entry of a per-layer attention plan)."""
    import copy

    config = copy.deepcopy(config)
    config.num_hidden_layers = 1
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:1]
    return config


def count_parameters(model) -> int:
    """The number of distinct parameters: a tensor shared by several layers counts once."""
    check_model(model)
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared one once


_TOKEN_EMBEDDINGS = re.compile(r"(^|\.)(word|tok)_embeddings\.")
_LAYERS = re.compile(r"(^|\.)(layer|layers|albert_layer_groups)\.\d")


def parameter_group(name: str) -> str:
    """Which part of an encoder the parameter ``name`` belongs to: ``"token embeddings"``,
    ``"transformer layers"``, ``"other embeddings"`` (positions, segments, their LayerNorm,
    ALBERT's projection, DeBERTa's relative positions) or ``"other"`` (pooler, final norm)."""
    if _TOKEN_EMBEDDINGS.search(name):
        return "token embeddings"
    if _LAYERS.search(name):
        return "transformer layers"
    if "embedding" in name:
        return "other embeddings"
    return "other"


PARAMETER_GROUPS = ("token embeddings", "other embeddings", "transformer layers", "other")


def parameter_breakdown(model) -> dict[str, int]:
    """Distinct parameters per group of :func:`parameter_group`; the values sum to
    :func:`count_parameters`."""
    check_model(model)
    groups = dict.fromkeys(PARAMETER_GROUPS, 0)
    for name, parameter in model.named_parameters():  # shared tensors are listed once
        groups[parameter_group(name)] += parameter.numel()
    return groups


def embedding_parameters(vocab_size: int, hidden_size: int) -> int:
    """BERT's token embedding matrix: one ``hidden_size`` vector per vocabulary entry."""
    _check_sizes(vocab_size=vocab_size, hidden_size=hidden_size)
    return vocab_size * hidden_size


def factorized_embedding_parameters(vocab_size: int, embedding_size: int, hidden_size: int) -> int:
    """ALBERT's factorized token embeddings: a ``vocab_size x embedding_size`` table, then a
    linear projection (weights and bias) from ``embedding_size`` up to ``hidden_size``."""
    _check_sizes(vocab_size=vocab_size, embedding_size=embedding_size, hidden_size=hidden_size)
    return vocab_size * embedding_size + embedding_size * hidden_size + hidden_size


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        check_count(value, name)


@torch.inference_mode()
def forward_seconds(model, batch_size: int, seq_len: int, *, repeats: int = 3, warmup: int = 1,
                    seed: int = 0) -> float:
    """Seconds for one forward pass of ``model`` over a ``batch_size x seq_len`` batch of token
    ids (:func:`bench_batch`), the fastest of ``repeats`` timed runs after ``warmup`` untimed
    ones. The fastest run is the least disturbed by other work on the machine.
    """
    _check_sizes(batch_size=batch_size, seq_len=seq_len, repeats=repeats)
    repeats = env.timing_repeats(repeats)
    batch_size, seq_len = env.timing_shape(batch_size, seq_len)  # a smoke test times the smallest
    check_count(warmup, "warmup", minimum=0)
    ids, mask = bench_batch(model, batch_size, seq_len, seed)
    return fastest_seconds(lambda: model(input_ids=ids, attention_mask=mask), repeats, warmup=warmup,
                           cuda=ids.device.type == "cuda")


def bench_batch(model, batch_size: int, seq_len: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The bench's input on ``model``'s device: ``batch_size x seq_len`` token ids drawn from
    1,000-1,999 (which every vocabulary of the family contains) and an attention mask of ones (no
    padding). Refuses a length beyond the model's positions."""
    check_model(model)
    _check_sizes(batch_size=batch_size, seq_len=seq_len)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and seq_len > limit:
        raise ValueError(f"seq_len {seq_len} is longer than the model's {limit} positions")
    device = next(model.parameters()).device
    ids = torch.randint(1000, 2000, (batch_size, seq_len), generator=torch.Generator().manual_seed(seed)).to(device)
    return ids, torch.ones_like(ids)


def forward_flops(model, seq_len: int, batch_size: int = 1) -> int:
    """Floating-point operations of one forward pass of ``model`` over a ``batch_size x
    seq_len`` batch of token ids (no padding), counted by torch's ``FlopCounterMode``: the
    matrix products (two operations per multiply-add), which are nearly all of an encoder's work.
    Nothing is timed, so the count is the same on every machine and every run.

    While counting, attention runs in its plain ("eager") form, since the counter cannot see
    inside the fused attention kernel that CPUs use, and no parameter asks for a gradient; the
    model is given back as it came."""
    from torch.utils.flop_counter import FlopCounterMode

    _check_sizes(batch_size=batch_size, seq_len=seq_len)
    ids, mask = bench_batch(model, batch_size, seq_len)
    attention = getattr(model.config, "_attn_implementation", None)
    switch = attention not in (None, "eager") and hasattr(model, "set_attn_implementation")
    wants_grad = [p.requires_grad for p in model.parameters()]
    try:
        if switch:
            model.set_attn_implementation("eager")
        model.requires_grad_(False)  # the counter's module tracker trips on leaves that want gradients
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        for parameter, wanted in zip(model.parameters(), wants_grad):
            parameter.requires_grad_(wanted)
        if switch:
            model.set_attn_implementation(attention)
    return int(counter.get_total_flops())


def speed_grid(builders: dict[str, Callable[[], torch.nn.Module]], batch_sizes: Sequence[int],
               seq_lens: Sequence[int], *, device: str = "cpu", repeats: int = 3,
               progress: bool = True):
    """:func:`speed_table` on every pair of a batch size and a sequence length."""
    for name, sizes in (("batch_sizes", batch_sizes), ("seq_lens", seq_lens)):
        if not isinstance(sizes, Iterable):
            raise TypeError(f"{name} must be a list of sizes, e.g. [1, 8], got {sizes!r:.40}")
    if not batch_sizes or not seq_lens:
        raise ValueError("batch_sizes and seq_lens must each hold at least one size")
    return speed_table(builders, [(b, n) for b in batch_sizes for n in seq_lens], device=device,
                       repeats=repeats, progress=progress)


def speed_table(builders: dict[str, Callable[[], torch.nn.Module]],
                shapes: Sequence[tuple[int, int]], *, device: str = "cpu", repeats: int = 3,
                progress: bool = True):
    """Time every model of ``builders`` (name -> function returning the model) on every shape,
    a ``(batch_size, seq_len)`` pair; one model in memory at a time. Returns a DataFrame with
    columns model, batch_size, seq_len, ms (latency of one batch), sequences/s, tokens/s
    (measured) and GFLOP (the work of one batch, counted by :func:`forward_flops`: the same on
    every run)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from bert_workbook.env import release_memory

    if not isinstance(builders, Mapping) or any(isinstance(build, torch.nn.Module) or not callable(build)
                                                for build in builders.values()):
        raise TypeError("builders must be a dict of name -> function that builds the model, e.g. "
                        "{'BERT-base': lambda: family.build_model(family.family_config('BERT-base'))}: "
                        "one model in memory at a time")
    if not builders:
        raise ValueError("builders is empty: nothing to time")
    shapes = [tuple(shape) for shape in shapes]
    if not shapes or any(len(shape) != 2 for shape in shapes):
        raise ValueError(f"shapes must be (batch_size, seq_len) pairs, at least one; got {shapes!r}")
    rows = []
    for name, build in tqdm(builders.items(), desc="models", disable=not progress):
        model = build().to(device).eval()
        per_sequence = {seq_len: forward_flops(model, seq_len) for seq_len in {n for _, n in shapes}}
        for batch_size, seq_len in shapes:
            seconds = forward_seconds(model, batch_size, seq_len, repeats=repeats)
            rows.append({"model": name, "batch_size": batch_size, "seq_len": seq_len,
                         "ms": 1000 * seconds, "sequences/s": batch_size / seconds,
                         "tokens/s": batch_size * seq_len / seconds,
                         "GFLOP": batch_size * per_sequence[seq_len] / 1e9})
        del model
        release_memory()
        if device != "cpu" and torch.cuda.is_available():
            torch.cuda.empty_cache()
    return pd.DataFrame(rows)


CITED_MNLI: dict[str, tuple[float | None, str]] = {name: (m.mnli, m.mnli_source) for name, m in MEMBERS.items()}
"""MNLI matched accuracy (%) as published, not measured by this course: fine-tuning recipes,
dev and test sets differ, so differences of a point or less say little."""
