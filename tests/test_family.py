"""The encoder-family bench: exact parameter counts, the breakdown, the ALBERT arithmetic and its
exercise check, and the speed timer's arguments."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bert_workbook import family
from bert_workbook.exercises import ex08


@pytest.fixture(scope="module")
def counted():
    return {name: family.build_model(family.family_config(name)) for name in family.FAMILY}


def test_every_member_builds_offline_and_matches_its_published_size(counted):
    for name, model in counted.items():
        published, source = family.PUBLISHED_PARAMETERS[name]
        assert source
        millions = family.count_parameters(model) / 1e6
        assert abs(millions - published) / published < 0.05, (name, millions, published)


def test_bert_base_count_is_exact(counted):
    # 30,522 x 768 tokens + 512 x 768 positions + 2 x 768 segments + LayerNorm, 12 layers of
    # 7,087,872, and the pooler: the figure transformers' own BertModel has always had.
    assert family.count_parameters(counted["BERT-base"]) == 109_482_240
    assert family.count_parameters(counted["ALBERT-base-v2"]) == 11_683_584


def test_architecture_reads_every_family_the_same_way():
    rows = {name: family.architecture(family.family_config(name)) for name in family.FAMILY}
    assert rows["BERT-base"] == {"layers": 12, "hidden": 768, "heads": 12, "feed-forward": 3072,
                                 "vocabulary": 30522, "token embedding width": 768,
                                 "positions": "learned absolute, 512", "segments": 2,
                                 "layers share weights": False}
    assert rows["DistilBERT"]["layers"] == 6 and rows["DistilBERT"]["segments"] == 0
    assert rows["RoBERTa-base"]["segments"] == 1
    assert rows["ALBERT-base-v2"]["layers share weights"]
    assert rows["ALBERT-base-v2"]["token embedding width"] == 128
    assert rows["DeBERTa-v3-base"]["positions"].startswith("relative")
    assert rows["ModernBERT-base"]["positions"].startswith("rotary")


def test_meta_models_hold_no_memory(counted):
    assert all(p.device.type == "meta" for p in counted["DeBERTa-v3-base"].parameters())


def test_breakdown_sums_to_the_count_and_finds_the_embeddings(counted):
    for name, model in counted.items():
        groups = family.parameter_breakdown(model)
        assert set(groups) == set(family.PARAMETER_GROUPS)
        assert sum(groups.values()) == family.count_parameters(model), name
        assert groups["transformer layers"] > 0, name
    bert = family.parameter_breakdown(counted["BERT-base"])
    assert bert["token embeddings"] == 30522 * 768
    assert bert["transformer layers"] == 12 * 7_087_872
    albert = family.parameter_breakdown(counted["ALBERT-base-v2"])
    assert albert["transformer layers"] == 7_087_872  # one layer, shared twelve times
    assert albert["token embeddings"] == 30000 * 128


@pytest.mark.parametrize("name, group", [
    ("embeddings.word_embeddings.weight", "token embeddings"),
    ("embeddings.tok_embeddings.weight", "token embeddings"),
    ("embeddings.position_embeddings.weight", "other embeddings"),
    ("encoder.embedding_hidden_mapping_in.weight", "other embeddings"),
    ("encoder.rel_embeddings.weight", "other embeddings"),
    ("encoder.layer.11.output.dense.weight", "transformer layers"),
    ("transformer.layer.0.attention.q_lin.weight", "transformer layers"),
    ("layers.21.mlp.Wo.weight", "transformer layers"),
    ("encoder.albert_layer_groups.0.albert_layers.0.ffn.weight", "transformer layers"),
    ("pooler.dense.weight", "other"),
    ("final_norm.weight", "other"),
])
def test_parameter_group(name, group):
    assert family.parameter_group(name) == group


def test_factorized_embeddings_by_hand():
    # 10 x 4 table (40) + 4 x 6 projection (24) + its bias (6); unfactorized: 10 x 6
    assert family.factorized_embedding_parameters(10, 4, 6) == 70
    assert family.embedding_parameters(10, 6) == 60
    # ALBERT-base: 30,000 x 128 + 128 x 768 + 768, against BERT's 30,000 x 768 at the same width
    assert family.factorized_embedding_parameters(30000, 128, 768) == 3_939_072
    assert family.embedding_parameters(30000, 768) == 23_040_000


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 60000), st.integers(1, 512), st.integers(1, 2048))
def test_the_counts_are_those_of_the_layers_themselves(v, e, h):
    with torch.device("meta"):  # shapes only: no memory, however large
        table, projection, full = torch.nn.Embedding(v, e), torch.nn.Linear(e, h), torch.nn.Embedding(v, h)
    built = sum(p.numel() for layer in (table, projection) for p in layer.parameters())
    assert family.factorized_embedding_parameters(v, e, h) == built
    assert family.embedding_parameters(v, h) == full.weight.numel()


def test_factorized_count_matches_real_albert(counted):
    model = counted["ALBERT-base-v2"]
    real = (model.embeddings.word_embeddings.weight.numel()
            + sum(p.numel() for p in model.encoder.embedding_hidden_mapping_in.parameters()))
    assert family.factorized_embedding_parameters(30000, 128, 768) == real == 3_939_072


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_sizes_are_validated(bad):
    with pytest.raises(ValueError):
        family.factorized_embedding_parameters(bad, 128, 768)
    with pytest.raises(ValueError):
        family.embedding_parameters(30000, bad)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="BERT-base"):
        family.family_config("GPT-5")


def tiny_bert():
    from transformers import BertConfig

    torch.manual_seed(0)
    config = BertConfig(vocab_size=2100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return family.build_model(config, "cpu")


def test_forward_seconds_times_a_real_forward_pass():
    model = tiny_bert()
    seconds = family.forward_seconds(model, 2, 16, repeats=2)
    assert 0 < seconds < 5
    with pytest.raises(ValueError, match="positions"):
        family.forward_seconds(model, 1, 65)
    for bad in [dict(batch_size=0), dict(repeats=0), dict(warmup=-1)]:
        arguments = dict(batch_size=1, seq_len=8, repeats=1, warmup=0) | bad
        with pytest.raises(ValueError):
            family.forward_seconds(model, **arguments)


def row_work(table, batch_size, seq_len):
    return table.query("batch_size == @batch_size and seq_len == @seq_len")["GFLOP"].iloc[0]


def test_speed_grid_has_one_row_per_model_and_shape():
    table = family.speed_grid({"a": tiny_bert, "b": tiny_bert}, [1, 2], [8, 16], repeats=1,
                              progress=False)
    assert len(table) == 8
    assert list(table.columns) == ["model", "batch_size", "seq_len", "ms", "sequences/s", "tokens/s", "GFLOP"]
    assert row_work(table, 2, 16) == pytest.approx(2 * row_work(table, 1, 16))  # work grows with the batch
    row = table.iloc[-1]
    assert row["tokens/s"] == pytest.approx(row["sequences/s"] * row["seq_len"])
    assert row["sequences/s"] == pytest.approx(row["batch_size"] / (row["ms"] / 1000))
    with pytest.raises(ValueError):
        family.speed_grid({}, [1], [8])
    with pytest.raises(ValueError):
        family.speed_grid({"a": tiny_bert}, [], [8])


def test_speed_table_times_exactly_the_shapes_asked_for():
    table = family.speed_table({"a": tiny_bert}, [(1, 8), (2, 16)], repeats=1, progress=False)
    assert list(zip(table.batch_size, table.seq_len)) == [(1, 8), (2, 16)]
    for bad in ([], [(1, 8, 2)], [(0, 8)], [(1, 65)]):
        with pytest.raises(ValueError):
            family.speed_table({"a": tiny_bert}, bad, repeats=1, progress=False)


def test_check_factorized_embeddings_passes_the_reference_and_names_mistakes():
    assert ex08.check_factorized_embeddings(family.factorized_embedding_parameters)
    result = ex08.check_factorized_embeddings(lambda v, e, h: (_ for _ in ()).throw(NotImplementedError()))
    assert not result and "not implemented" in result.message
    slips = {
        "unfactorized": lambda v, e, h: v * h,
        "is missing": lambda v, e, h: v * e,
        "bias": lambda v, e, h: v * e + e * h,
        "hidden_size x hidden_size": lambda v, e, h: v * e + h * h + h,
        "whole number": lambda v, e, h: "many",
    }
    for words, slip in slips.items():
        result = ex08.check_factorized_embeddings(slip)
        assert not result and words in result.message, (words, result)
    assert not ex08.check_factorized_embeddings(lambda v, e, h: v * e + e * h + h + 1)


def test_the_family_is_the_nine_models_of_the_course_tables_each_with_its_own_architecture():
    assert family.FAMILY == ("BERT-base", "RoBERTa-base", "DistilBERT", "ALBERT-base-v2", "DeBERTa-base",
                             "DeBERTa-v3-base", "ELECTRA-small", "ELECTRA-base", "ModernBERT-base")
    kinds = [family.family_config(name).model_type for name in family.FAMILY]
    assert kinds == ["bert", "roberta", "distilbert", "albert", "deberta", "deberta-v2", "electra",
                     "electra", "modernbert"]


def test_every_cited_figure_has_a_source_and_its_unit():
    for name in family.FAMILY:
        millions, parameters_source = family.PUBLISHED_PARAMETERS[name]
        assert parameters_source and 1 < millions < 1000, name  # millions: not a raw count
        mnli, mnli_source = family.CITED_MNLI[name]
        assert (mnli is None) == (mnli_source == "not cited here"), name  # no figure without a source
        assert mnli is None or 50 < mnli < 100, name  # a percentage, as the papers print it


def test_a_smoke_test_builds_one_layer_on_a_real_device_and_counts_every_layer(monkeypatch):
    from transformers import BertConfig

    config = BertConfig(vocab_size=2100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    monkeypatch.setenv("BERT_WORKBOOK_SMOKE", "1")
    assert len(family.build_model(config, "cpu").encoder.layer) == 1
    assert len(family.build_model(config).encoder.layer) == 3  # meta: parameter counts stay whole
    assert config.num_hidden_layers == 3  # the caller's config is left alone
    monkeypatch.setenv("BERT_WORKBOOK_SMOKE", "0")
    assert len(family.build_model(config, "cpu").encoder.layer) == 3
    modern = family.one_layer(family.family_config("ModernBERT-base"))
    assert modern.num_hidden_layers == 1 and len(getattr(modern, "layer_types", None) or [None]) == 1


def test_a_timed_model_has_random_weights_and_its_own_buffers():
    from transformers import AutoModel

    for name in ("BERT-base", "ModernBERT-base"):
        config = family.one_layer(family.family_config(name))
        model = family.build_model(config, "cpu")
        reference = AutoModel.from_config(config)
        buffers = dict(reference.named_buffers())
        assert all(torch.equal(value, buffers[key]) for key, value in model.named_buffers())
        weights = torch.cat([p.flatten() for p in model.parameters()])
        assert torch.isfinite(weights).all() and 0.015 < weights.std() < 0.025
        ids = torch.randint(1000, 2000, (2, 8))
        with torch.no_grad():
            assert torch.isfinite(model(input_ids=ids).last_hidden_state).all()
    with pytest.raises(ValueError):
        family.random_weights(model, std=0)


def test_forward_flops_counts_the_matrix_products_and_gives_the_model_back():
    from transformers import BertConfig

    config = BertConfig(vocab_size=2100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    model = family.build_model(config, "cpu")
    model.encoder.layer[0].output.dense.weight.requires_grad_(False)
    before = (model.config._attn_implementation, [p.requires_grad for p in model.parameters()])
    n, h, f, layers = 16, 32, 64, 2
    per_layer = 2 * n * (4 * h * h + 2 * h * f) + 2 * 2 * n * n * h  # projections, MLP, scores and mix
    assert family.forward_flops(model, n) == layers * per_layer + 2 * h * h  # + the pooler (one token)
    assert family.forward_flops(model, n, batch_size=3) == 3 * family.forward_flops(model, n)
    assert (model.config._attn_implementation, [p.requires_grad for p in model.parameters()]) == before
    with pytest.raises(ValueError, match="positions"):
        family.forward_flops(model, 65)
    with pytest.raises(ValueError):
        family.forward_flops(model, 0)
