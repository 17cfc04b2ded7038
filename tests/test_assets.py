import time

import pytest
import torch
from transformers import AutoTokenizer, BertTokenizer

from bert_workbook import assets

TEXTS = [
    "The cat sat on the unaffable mat.",
    "Naïve café owners in Mt. Sanitas don't tokenize 🙂!",
    "BERT's WordPiece vocabulary has 30,522 entries; hyperparameterization is rare.",
]


def test_embedded_tokenizer_is_bert_base_uncased_wordpiece(tokenizer):
    assert len(tokenizer) == 30522
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]}
    assert ids == {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
    assert tokenizer.model_max_length == 512
    assert tokenizer.tokenize("Hello") == ["hello"]


def test_embedded_tokenizer_matches_the_models_own_tokenizer_json(tokenizer):
    shipped = AutoTokenizer.from_pretrained(assets.embedded_model_dir())
    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == shipped(text, padding=False, truncation=False)["input_ids"]


def test_slow_tokenizer_agrees_with_fast(tokenizer):
    slow = assets.load_slow_tokenizer()
    assert type(slow).__name__ == "BertTokenizerLegacy"
    for text in TEXTS:
        assert slow(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_cased_tokenizer_keeps_case():
    cased = assets.load_cased_tokenizer()
    assert len(cased) == 28996
    assert cased.tokenize("Hello") == ["Hello"]
    assert cased.convert_tokens_to_ids("[MASK]") == 103


def test_assert_tokenizer_works_catches_the_vocab_file_trap():
    # transformers 5 silently ignores vocab_file= and gives a tokenizer that outputs only [UNK]
    broken = BertTokenizer(vocab_file=str(assets.embedded_model_dir() / "vocab.txt"))
    with pytest.raises(assets.AssetUnavailableError, match="vocab="):
        assets.assert_tokenizer_works(broken)


def test_encoder_is_a_pretrained_six_layer_bert():
    model = assets.load_encoder()
    assert type(model).__name__ == "BertModel"
    assert not model.training
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (6, 384)
    assert sum(p.numel() for p in model.parameters()) == 22_713_216
    # pretrained, not random: related sentences are closer than unrelated ones
    tok = assets.load_tokenizer()
    batch = tok(["A cat sits on a mat.", "A kitten rests on a rug.", "Stock markets fell sharply."],
                padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    similar, unrelated = pooled[0] @ pooled[1], pooled[0] @ pooled[2]
    assert similar > unrelated + 0.3


@pytest.mark.parametrize("bad", ["", "   ", 3, ["bert"]])
def test_resolve_model_name_rejects_bad_names(bad):
    with pytest.raises(TypeError, match="name"):
        assets.resolve_model_name(bad)


def test_resolve_model_name_follows_the_setting(monkeypatch):
    monkeypatch.setenv("BERT_WORKBOOK_MODEL", "bert-base-cased")
    assert assets.resolve_model_name() == "bert-base-cased"
    assert assets.resolve_model_name("embedded") == "embedded"


class _NotCached:
    calls = []

    @classmethod
    def from_pretrained(cls, name, **kwargs):
        cls.calls.append(kwargs)
        raise OSError(f"{name} is not in the cache")


def test_hub_model_offline_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setattr(assets, "hub_is_offline", lambda: True)
    _NotCached.calls.clear()
    start = time.perf_counter()
    with pytest.raises(assets.AssetUnavailableError) as info:
        assets.from_hub(_NotCached, "bert-base-uncased")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "bert-base-uncased" in message and "BERT_WORKBOOK_MODEL" in message
    assert _NotCached.calls == [{"local_files_only": True}]  # never tried the network


def test_hub_model_unreachable_fails_with_instructions(monkeypatch):
    monkeypatch.setattr(assets, "hub_is_offline", lambda: False)
    monkeypatch.setattr(assets, "hub_reachable", lambda timeout=3.0: False)
    _NotCached.calls.clear()
    with pytest.raises(assets.AssetUnavailableError, match="cannot be reached"):
        assets.from_hub(_NotCached, "bert-base-uncased")
    assert len(_NotCached.calls) == 1


def test_real_loader_offline_fails_fast():
    # HF_HUB_OFFLINE=1 in the tests: a real transformers call for an uncached model
    start = time.perf_counter()
    with pytest.raises(assets.AssetUnavailableError):
        assets.load_tokenizer("some-org/not-a-cached-model")
    assert time.perf_counter() - start < 10


def test_missing_asset_package_names_the_install_command():
    with pytest.raises(assets.AssetUnavailableError, match="pip install nothing-here==1"):
        assets.package_dir("no_such_course_asset_package", "nothing-here==1")
