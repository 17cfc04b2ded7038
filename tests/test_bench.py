"""The benchmark's measuring functions (bench/throughput.py): batching strategies, FLOP counts,
GPU peaks and the step timer. The figures themselves are measured by `make bench`, never here."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import throughput  # noqa: E402

TEXTS = ["a short one .", "a somewhat longer sentence with more words in it .", "tiny",
         "the longest text of them all , with many many words to pad the others against ."] * 8
LABELS = [0, 1, 0, 1] * 8


@pytest.mark.parametrize("strategy", throughput.STRATEGIES)
def test_every_strategy_keeps_every_example_once(tokenizer, strategy):
    batches = throughput.padded_batches(TEXTS, LABELS, tokenizer, strategy, batch_size=4)
    assert len(batches) == 8
    assert sorted(int(x) for b in batches for x in b["labels"]) == sorted(LABELS)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    assert real == sum(len(ids) for ids in tokenizer(TEXTS)["input_ids"])
    widths = {b["input_ids"].shape[1] for b in batches}
    if strategy.startswith("max_length"):
        assert widths == {int(strategy.split()[1])}
    else:
        assert max(widths) < 128


def test_length_grouping_cuts_padding(tokenizer):
    def padding(strategy):
        batches = throughput.padded_batches(TEXTS, LABELS, tokenizer, strategy, batch_size=4)
        return sum(b["attention_mask"].numel() for b in batches)

    assert padding("dynamic + length-grouped") < padding("dynamic") < padding("max_length 128")


def test_bad_strategy_and_sizes_are_refused(tokenizer):
    with pytest.raises(ValueError, match="strategy"):
        throughput.padded_batches(TEXTS, LABELS, tokenizer, "bucketed", 4)
    with pytest.raises(ValueError):
        throughput.padded_batches(TEXTS, LABELS[:3], tokenizer, "dynamic", 4)


def test_training_steps_per_second_counts_real_tokens(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32))
    batches = throughput.padded_batches(TEXTS, LABELS, tokenizer, "max_length 128", batch_size=4)
    result = throughput.training_steps_per_second(model, batches, steps=2, warmup=1)
    assert result["steps"] == 2 and result["examples/s"] > 0
    assert 0 < result["padding"] < 1
    assert result["tokens/s"] == pytest.approx(result["positions/s"] * (1 - result["padding"]))
    with pytest.raises(ValueError):
        throughput.training_steps_per_second(model, batches, steps=0)


def test_bert_base_training_flops_per_token():
    from transformers import BertConfig

    flops = throughput.bert_training_flops_per_token(BertConfig(), 512)
    # 6 x (12 layers x 7.08M multiplying weights + the pooler) + 12 x 12 x 512 x 768
    assert flops == 6 * (12 * (4 * 768**2 + 2 * 768 * 3072) + 768**2) + 12 * 12 * 512 * 768
    assert 5.5e8 < flops < 6.5e8


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-40GB", 312e12), ("Tesla T4", 65e12), ("NVIDIA L4", 121e12),
    ("Some Future GPU", None),
])
def test_gpu_peak_flops(name, peak):
    assert throughput.gpu_peak_flops(name) == peak


def test_gpu_part_skips_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert throughput.gpu_training_throughput() is None
