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
