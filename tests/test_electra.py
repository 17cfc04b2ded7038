"""Replaced-token detection: the corruption, its labels, the signal fraction, a training step."""

import pytest
import torch

from bert_workbook import assets, electra, mlm
from bert_workbook.masking import IGNORE_INDEX


@pytest.fixture(scope="module")
def generator_model():
    return assets.load_masked_lm()


@pytest.fixture(scope="module")
def windows(tokenizer):
    texts = ["The film was a delight from start to finish, with a clever plot."] * 40
    return mlm.token_windows(tokenizer, texts, 32)


def test_signal_fraction():
    labels = torch.tensor([[-100, 5, -100, -100, -100], [-100, 1, 0, 0, -100]])
    special = torch.tensor([[1, 0, 0, 0, 1], [1, 0, 0, 0, 1]])
    assert electra.signal_fraction(labels, special) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="shape"):
        electra.signal_fraction(labels, special[:, :3])
    with pytest.raises(ValueError, match="special"):
        electra.signal_fraction(labels, torch.ones_like(special))


def test_corruption_labels_every_real_position(generator_model, windows, tokenizer):
    corrupted, labels = electra.corrupt_with_generator(
        generator_model, windows, tokenizer, rng=torch.Generator().manual_seed(0))
    special = mlm.special_tokens_mask(windows, tokenizer).bool()
    assert corrupted.shape == windows.shape
    assert (labels[special] == IGNORE_INDEX).all()
    assert set(labels[~special].tolist()) <= {0, 1}
    assert electra.signal_fraction(labels, special) == 1.0
    # a replaced label exactly where the token changed; never a [MASK] left in the text
    assert torch.equal(labels[~special] == 1, (corrupted != windows)[~special])
    assert not (corrupted == tokenizer.mask_token_id).any()
    replaced = (labels == 1).float()[~special].mean()
    assert 0.03 < replaced < 0.15  # at most the 15% masked, fewer where the sample was right


def test_no_masking_means_no_replacement(generator_model, windows, tokenizer):
    corrupted, labels = electra.corrupt_with_generator(generator_model, windows, tokenizer,
                                                       mask_probability=0.0)
    assert torch.equal(corrupted, windows)
    with pytest.raises(ValueError):
        electra.corrupt_with_generator(generator_model, windows, tokenizer, temperature=0)


def test_a_few_discriminator_steps_run_and_give_probabilities(generator_model, windows, tokenizer):
    corrupted, labels = electra.corrupt_with_generator(generator_model, windows, tokenizer)
    torch.manual_seed(0)
    discriminator = assets.load_token_classifier(electra.LABEL_NAMES)
    losses = electra.train_discriminator(discriminator, corrupted, labels, steps=3, batch_size=16,
                                         progress=False)
    assert len(losses) == 3 and all(loss > 0 for loss in losses)  # 3 steps: a second pass of 2
    probability = electra.replaced_probability(discriminator, windows[:3])
    assert probability.shape == windows[:3].shape
    assert ((probability >= 0) & (probability <= 1)).all()
    with pytest.raises(ValueError, match="fewer"):
        electra.train_discriminator(discriminator, corrupted[:2], labels[:2], steps=1, batch_size=4)
    with pytest.raises(ValueError, match="shape"):
        electra.train_discriminator(discriminator, corrupted, labels[:, :5], steps=1)
    with pytest.raises(ValueError):
        electra.train_discriminator(discriminator, corrupted, labels, steps=0)
