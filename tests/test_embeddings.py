import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertModel

from bert_workbook import embeddings
from bert_workbook.exercises import ex03


def random_bert(hidden, vocab, positions, types, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=positions, type_vocab_size=types)
    model = BertModel(config).eval()
    with torch.no_grad():  # non-trivial LayerNorm, so a missing scale or shift shows
        model.embeddings.LayerNorm.weight.uniform_(0.5, 2)
        model.embeddings.LayerNorm.bias.normal_()
    return model


@settings(max_examples=20, deadline=None)
@given(hidden=st.sampled_from([8, 32, 96]), vocab=st.integers(5, 300), positions=st.integers(4, 64),
       types=st.integers(1, 4), batch=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_matches_the_library_module_on_random_configs(hidden, vocab, positions, types, batch, seed):
    model = random_bert(hidden, vocab, positions, types, seed)
    g = torch.Generator().manual_seed(seed)
    length = int(torch.randint(1, positions + 1, (1,), generator=g))
    ids = torch.randint(vocab, (batch, length), generator=g)
    segments = torch.randint(types, (batch, length), generator=g)
    with torch.no_grad():
        expected = model.embeddings(input_ids=ids, token_type_ids=segments)
        mine = embeddings.build_input_embeddings(model, ids, segments)
    torch.testing.assert_close(mine, expected, atol=1e-6, rtol=1e-6)


def test_missing_token_types_mean_segment_zero():
    model = random_bert(16, 50, 10, 2)
    ids = torch.randint(50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(embeddings.build_input_embeddings(model, ids),
                                   model.embeddings(input_ids=ids))


def test_accepts_a_masked_lm_model_too():
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=16)).eval()
    ids = torch.randint(40, (1, 5))
    with torch.no_grad():
        torch.testing.assert_close(embeddings.build_input_embeddings(model, ids),
                                   model.bert.embeddings(input_ids=ids))


@pytest.mark.parametrize("ids, types, match", [
    (torch.tensor([[1, 2, 50]]), None, r"input_ids must lie in \[0, 50\)"),
    (torch.tensor([[1, -1]]), None, "input_ids must lie"),
    (torch.zeros(1, 11, dtype=torch.long), None, "exceeds the 10 learned positions"),
    (torch.tensor([1, 2]), None, r"shape \(batch, length\)"),
    (torch.tensor([[1, 2]]), torch.tensor([[0, 0, 0]]), "token_type_ids has shape"),
    (torch.tensor([[1, 2]]), torch.tensor([[0, 2]]), r"token_type_ids must lie in \[0, 2\)"),
])
def test_bad_inputs_raise_clear_errors(ids, types, match):
    model = random_bert(16, 50, 10, 2)
    with pytest.raises(ValueError, match=match):
        embeddings.build_input_embeddings(model, ids, types)


def test_float_ids_and_non_models_are_rejected():
    model = random_bert(16, 50, 10, 2)
    with pytest.raises(TypeError, match="torch.long"):
        embeddings.build_input_embeddings(model, torch.zeros(1, 3), None)
    with pytest.raises(TypeError, match="word_embeddings"):
        embeddings.build_input_embeddings(torch.nn.Linear(2, 2), torch.zeros(1, 3, dtype=torch.long))


def test_table_sizes_of_bert_base():
    rows = {r["table"]: r for r in embeddings.embedding_table_sizes(BertConfig())}
    assert rows["token (WordPiece)"]["parameters"] == 30522 * 768
    assert rows["position"]["rows"] == 512 and rows["segment (token type)"]["rows"] == 2
    assert sum(r["parameters"] for r in rows.values()) == 23_837_184  # bert-base's embedding block


def test_sinusoidal_positions_match_the_formula():
    table = embeddings.sinusoidal_positions(50, 16)
    assert table.shape == (50, 16)
    torch.testing.assert_close(table[0, 0::2], torch.zeros(8))
    torch.testing.assert_close(table[0, 1::2], torch.ones(8))
    assert abs(table[7, 2] - torch.sin(torch.tensor(7 / 10000 ** (2 / 16)))) < 1e-6
    with pytest.raises(ValueError):
        embeddings.sinusoidal_positions(10, 7)


def test_cosine_matrix_and_mean_pairwise_cosine():
    same = torch.ones(5, 3)
    assert embeddings.mean_pairwise_cosine(same) == pytest.approx(1.0)
    torch.testing.assert_close(embeddings.cosine_matrix(same), torch.ones(5, 5))
    opposite = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert embeddings.mean_pairwise_cosine(opposite) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        embeddings.mean_pairwise_cosine(torch.ones(1, 3))


def test_z_score_removes_a_shared_direction():
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(500, 20, generator=g) + 10 * torch.ones(20)  # all point the same way
    assert embeddings.mean_pairwise_cosine(vectors, generator=g) > 0.9
    scored = embeddings.z_score(vectors)
    assert abs(embeddings.mean_pairwise_cosine(scored, generator=g)) < 0.05
    torch.testing.assert_close(scored.mean(0), torch.zeros(20), atol=1e-5, rtol=0)


def test_word_vectors_by_layer(tokenizer):
    from bert_workbook.assets import load_encoder

    model = load_encoder("embedded")
    vectors = embeddings.word_vectors_by_layer(model, tokenizer, "The bank declined it.", "bank")
    assert vectors.shape == (model.config.num_hidden_layers + 1, model.config.hidden_size)
    with torch.no_grad():
        ids = tokenizer("The bank declined it.", return_tensors="pt")["input_ids"]
        torch.testing.assert_close(vectors[0], model.embeddings(input_ids=ids)[0, 2])
    pieces = embeddings.word_vectors_by_layer(model, tokenizer, "Hyperparameterization rocks", "hyperparameterization")
    assert pieces.shape == vectors.shape
    with pytest.raises(ValueError, match="not a word"):
        embeddings.word_vectors_by_layer(model, tokenizer, "The bank declined it.", "river")


def test_next_sentence_pairs_are_balanced_and_correct():
    docs = [[f"d{d} s{s}" for s in range(5)] for d in range(6)]
    pairs = embeddings.next_sentence_pairs(docs, 400, torch.Generator().manual_seed(0))
    is_next = [(a, b) for a, b, label in pairs if label == "IsNext"]
    not_next = [(a, b) for a, b, label in pairs if label == "NotNext"]
    assert 150 < len(is_next) < 250
    for a, b in is_next:
        assert a.split()[0] == b.split()[0] and int(b[-1]) == int(a[-1]) + 1
    for a, b in not_next:
        assert a.split()[0] != b.split()[0]
    with pytest.raises(ValueError):
        embeddings.next_sentence_pairs([["only one doc", "two"]], 3)


def test_check_passes_reference_and_fails_mistakes():
    assert ex03.check_build_input_embeddings(embeddings.build_input_embeddings).passed

    def no_layer_norm(model, ids, types):
        e = model.embeddings
        return (e.word_embeddings.weight[ids] + e.token_type_embeddings.weight[types]
                + e.position_embeddings.weight[torch.arange(ids.shape[1])])

    def no_segments(model, ids, types):
        return embeddings.build_input_embeddings(model, ids, None)

    def positions_from_one(model, ids, types):
        e = model.embeddings
        x = (e.word_embeddings.weight[ids] + e.token_type_embeddings.weight[types]
             + e.position_embeddings.weight[torch.arange(1, ids.shape[1] + 1)])
        return e.LayerNorm(x)

    def stub(model, ids, types):
        raise NotImplementedError

    def first_row_only(model, ids, types):
        return embeddings.build_input_embeddings(model, ids, types)[:1]

    for wrong, says in [(no_layer_norm, "LayerNorm"), (no_segments, "segment"),
                        (positions_from_one, "start at 0"), (stub, "not implemented"),
                        (first_row_only, "of shape")]:
        result = ex03.check_build_input_embeddings(wrong)
        assert not result.passed and says in str(result), str(result)
