"""One-sided fill-mask (notebook 02): the hidden side cannot influence the guess."""

import pytest
import torch

from bert_workbook import context


@pytest.fixture(scope="module")
def tiny_masked_lm():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return BertForMaskedLM(config).eval()


def test_hidden_tokens_cannot_change_the_guess(tiny_masked_lm):
    windows = torch.randint(5, 200, (6, 16), generator=torch.Generator().manual_seed(1))
    positions = context.blank_positions(windows)
    assert ((positions >= 4) & (positions < 12)).all()
    altered = windows.clone()
    rows = torch.arange(len(windows))
    for side, hidden in (("left only", lambda i: i > positions[:, None]),
                         ("right only", lambda i: (i < positions[:, None]) & (i > 0))):
        index = torch.arange(16)[None, :]
        altered = torch.where(hidden(index), torch.randint(5, 200, windows.shape), windows)
        logits = []
        for w in (windows, altered):
            inputs, attention = context.one_sided_inputs(w, positions, 4, side)
            logits.append(tiny_masked_lm(input_ids=inputs, attention_mask=attention).logits[rows, positions])
        torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-5)
    inputs, attention = context.one_sided_inputs(windows, positions, 4, "both sides")
    assert (inputs[rows, positions] == 4).all() and attention.all()


def test_correct_by_side_is_paired_and_checks_its_input(tiny_masked_lm):
    windows = torch.randint(5, 200, (10, 16), generator=torch.Generator().manual_seed(2))
    correct = context.correct_by_side(tiny_masked_lm, windows, 4, batch_size=4)
    assert set(correct) == set(context.SIDES)
    assert all(v.shape == (10,) and set(v.tolist()) <= {0.0, 1.0} for v in correct.values())
    class WholeVocabularyEverywhere(torch.nn.Module):  # no .bert/.cls: logits at every position
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **inputs):
            return self.inner(**inputs)

    assert {side: v.tolist() for side, v in correct.items()} == {
        side: v.tolist() for side, v in context.correct_by_side(
            WholeVocabularyEverywhere(tiny_masked_lm), windows, 4, batch_size=3).items()}
    with pytest.raises(ValueError, match="side must be one of"):
        context.one_sided_inputs(windows, context.blank_positions(windows), 4, "middle")
    with pytest.raises(ValueError, match="length >= 8"):
        context.blank_positions(torch.zeros(3, 4, dtype=torch.long))


def test_polarity_score_reads_the_blank_and_checks_its_words(tiny_masked_lm, tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64)).eval()
    texts = ["the film was [MASK].", "the film was [MASK] and long."]
    scores = context.polarity_score(model, tokenizer, texts, ["good", "great"], ["bad"])
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    same = context.polarity_score(model, tokenizer, texts, ["good"], ["good"])
    assert torch.allclose(same, torch.zeros(2))
    with pytest.raises(ValueError, match="single tokens"):
        context.polarity_score(model, tokenizer, texts, ["unaffable"], ["bad"])
    with pytest.raises(ValueError, match="exactly one"):
        context.polarity_score(model, tokenizer, ["no blank here"], ["good"], ["bad"])
