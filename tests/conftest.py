import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

import bert_workbook  # noqa: E402,F401  (sets up offline hub access before transformers loads)


@pytest.fixture(scope="session")
def tokenizer():
    from bert_workbook.assets import load_tokenizer

    return load_tokenizer("embedded")


@pytest.fixture(scope="session")
def vocab(tokenizer):
    return tokenizer.get_vocab()


@pytest.fixture(scope="session")
def tiny_bert():
    """A factory of tiny random BERT encoders (seeded, eval mode): ``tiny_bert(layers)``."""
    import torch
    from transformers import BertConfig, BertModel

    def make(num_hidden_layers: int = 1):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=num_hidden_layers,
                            num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
        return BertModel(config).eval()

    return make
