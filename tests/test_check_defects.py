"""Each defect the exercise review found (issue 19), reproduced: the checks must now catch the
wrong answers, answer (never raise) for odd ones, and accept right answers of other types."""

import numpy as np
import pytest
import torch

from bert_workbook import embeddings, imbalance, masking, ner, wordpiece
from bert_workbook.data import CONLL_TAGS
from bert_workbook.exercises import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08

# --- mask_tokens ------------------------------------------------------------------------------


def in_place(input_ids, special_tokens_mask, vocab_size, mask_token_id, mlm_probability=0.15, generator=None):
    inputs, labels = masking.mask_tokens(input_ids, special_tokens_mask, vocab_size, mask_token_id,
                                         mlm_probability, generator)
    input_ids.copy_(inputs)  # the slip: the caller's batch is overwritten
    return input_ids, labels


def hard_coded(what):
    def answer(input_ids, special_tokens_mask, vocab_size, mask_token_id, mlm_probability=0.15, generator=None):
        options = {"probability": (vocab_size, mask_token_id, 0.15), "vocab": (30522, mask_token_id, mlm_probability),
                   "mask id": (vocab_size, 103, mlm_probability)}[what]
        size, mask_id, probability = options
        if what == "vocab":  # random tokens from BERT's vocabulary whatever the caller's
            inputs, labels = masking.mask_tokens(input_ids, special_tokens_mask, 30522, mask_id, probability,
                                                 generator, random_token_ids=torch.arange(30522)) \
                if int(input_ids.max()) < 30522 else (None, None)
            return inputs, labels
        if mask_id >= size:  # 103 outside a small vocabulary: put it in by hand
            inputs, labels = masking.mask_tokens(input_ids, special_tokens_mask, size, 0, probability, generator)
            inputs[(labels != -100) & (inputs == 0)] = 103
            return inputs, labels
        return masking.mask_tokens(input_ids, special_tokens_mask, size, mask_id, probability, generator)
    return answer


def test_mask_tokens_check_catches_a_function_that_changes_its_input():
    before = ex02.masking_batch()[0].clone()
    result = ex02.check_mask_tokens(in_place)
    assert not result.passed and "in place" in result.message
    assert torch.equal(ex02.masking_batch()[0], before)  # the cached batch is intact
    assert ex02.check_mask_tokens(masking.mask_tokens).passed  # the reference still passes afterwards


@pytest.mark.parametrize("what, says", [("probability", "mlm_probability"), ("vocab", "vocab_size"),
                                        ("mask id", "mask_token_id")])
def test_mask_tokens_check_catches_hard_coded_parameters(what, says):
    result = ex02.check_mask_tokens(hard_coded(what))
    assert not result.passed and says in result.message, result


def test_masking_batch_hands_out_copies():
    ids, _ = ex02.masking_batch()
    ids.zero_()
    assert ex02.masking_batch()[0].any()


def test_mask_tokens_takes_numpy_numbers_and_rejects_ids_outside_the_vocabulary():
    ids = torch.randint(5, 50, (4, 16))
    special = torch.zeros_like(ids)
    masking.mask_tokens(ids, special, np.int64(100), np.int64(3), np.float32(0.15))
    with pytest.raises(ValueError, match="random_token_ids"):
        masking.mask_tokens(ids, special, 100, 3, random_token_ids=torch.tensor([5, 500]))
    with pytest.raises(ValueError, match="mask_token_id must be an int"):
        masking.mask_tokens(ids, special, 100, None)


# --- the input embeddings -----------------------------------------------------------------------


def test_embeddings_check_sees_the_module_called_and_meta_tensors():
    result = ex03.check_build_input_embeddings(
        lambda model, ids, types: model.embeddings(input_ids=ids, token_type_ids=types))
    assert not result.passed and "ran model.embeddings" in result.message
    meta = ex03.check_build_input_embeddings(
        lambda model, ids, types: torch.empty(*ids.shape, model.config.hidden_size, device="meta"))
    assert not meta.passed
    assert ex03.check_build_input_embeddings(embeddings.build_input_embeddings).passed


# --- the [CLS] classifier -------------------------------------------------------------------------


class Reference(torch.nn.Module):
    def __init__(self, encoder, num_labels, dropout=0.1, use_types=True, use_dropout=True):
        super().__init__()
        self.encoder, self.use_types, self.use_dropout = encoder, use_types, use_dropout
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids if self.use_types else None).last_hidden_state
        pooled = self.encoder.pooler.activation(self.encoder.pooler.dense(hidden[:, 0]))
        return self.classifier(self.dropout(pooled) if self.use_dropout else pooled)


@pytest.mark.parametrize("options, passes, says", [
    ({}, True, "training mode"),
    ({"use_types": False}, False, "token_type_ids"),
    ({"use_dropout": False}, False, "dropout is never applied"),
])
def test_cls_check_sees_token_types_and_dropout(options, passes, says):
    result = ex04.check_cls_classifier(lambda encoder, n: Reference(encoder, n, **options))
    assert result.passed is passes and says in result.message, result


# --- label alignment ----------------------------------------------------------------------------------


def conll_numbering(word_labels, word_ids, label_all_subwords=False, b_to_i=None):
    """Ignores b_to_i and turns B-X into I-X by CoNLL's numbering (odd id + 1)."""
    return ner.align_labels_to_tokens(word_labels, word_ids, label_all_subwords=label_all_subwords,
                                      b_to_i={i: i + 1 for i in range(1, len(CONLL_TAGS), 2)})


def test_align_check_catches_an_answer_that_ignores_b_to_i():
    result = ex07.check_align_labels(conll_numbering)
    assert not result.passed and "b_to_i" in result.message, result
    numpy_answer = ex07.check_align_labels(lambda *a, **k: np.array(ner.align_labels_to_tokens(*a, **k)))
    assert numpy_answer.passed, numpy_answer


# --- WordPiece ----------------------------------------------------------------------------------------


def off_by_one_cap(word, vocab):
    return ["[UNK]"] if len(word) >= 100 else wordpiece.wordpiece_tokenize_word(word, vocab)


def test_wordpiece_check_catches_an_off_by_one_length_cap():
    result = ex01.check_wordpiece(off_by_one_cap)
    assert not result.passed and "abab" in result.message


# --- oversampling --------------------------------------------------------------------------------------


def skewed_in_class_two(labels, seed):
    """Uniform in class 1, but class 2's duplicates all copy one example."""
    rows = imbalance.oversample_minority(labels, seed)
    labels = np.asarray(labels)
    extra = rows[len(labels):]
    first_of_two = np.flatnonzero(labels == 2)[0]
    extra = np.where(labels[extra] == 2, first_of_two, extra)
    return np.concatenate([rows[:len(labels)], extra])


@pytest.mark.parametrize("answer, says", [
    (lambda labels, seed: np.array([], dtype=int), "no indices"),
    (skewed_in_class_two, "class 2"),
])
def test_oversample_check_answers_empty_and_skewed_draws(answer, says):
    result = ex05.check_oversample(answer)
    assert not result.passed and says in result.message, result


# --- the factorized embeddings count ----------------------------------------------------------------


def albert_count(vocab_size, embedding_size, hidden_size):
    return vocab_size * embedding_size + embedding_size * hidden_size + hidden_size


@pytest.mark.parametrize("answer, passes", [
    (lambda v, e, h: np.int64(albert_count(v, e, h)), True),
    (lambda v, e, h: torch.tensor(albert_count(v, e, h)), True),
    (lambda v, e, h: float(albert_count(v, e, h)), True),
    (lambda v, e, h: float("nan"), False),
    (lambda v, e, h: "many", False),
    (lambda v, e, h: [1, 2], False),
])
def test_factorized_check_takes_any_whole_number_and_answers_the_rest(answer, passes):
    result = ex08.check_factorized_embeddings(answer)
    assert result.passed is passes, result


# --- the first-subword mask ---------------------------------------------------------------------------


@pytest.mark.parametrize("convert", [np.array, torch.tensor, tuple])
def test_first_subword_check_takes_arrays_and_tensors(convert):
    result = ex01.check_first_subword_mask(lambda word_ids: convert(wordpiece.first_subword_mask(word_ids)))
    assert result.passed, result


# --- focal loss: the natural reaction to "no gradient" -------------------------------------------------


def test_focal_check_answers_a_loss_rebuilt_from_a_number():
    from bert_workbook import losses

    def rebuilt(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
        loss = losses.focal_loss(logits, target, gamma, alpha, ignore_index, reduction)
        return torch.tensor(float(loss.detach()), requires_grad=True)

    result = ex06.check_focal_loss(rebuilt)
    assert not result.passed and "gradient" in result.message


# --- helpers that raised obscure errors or returned silent wrong results ---------------------------


def test_helpers_say_what_was_wrong():
    from transformers import RobertaConfig, RobertaModel

    from bert_workbook import imbalance, losses

    with pytest.raises(ValueError, match="integer class ids"):
        imbalance.oversample_minority(["pos", "neg", "neg"], 0)
    with pytest.raises(ValueError, match="num_samples"):
        imbalance.balanced_sampler([0, 1, 1], 0, num_samples=0)
    assert len(list(imbalance.balanced_sampler([0, 1, 1], 0, num_samples=5))) == 5
    with pytest.raises(ValueError, match="NaN or infinite"):
        imbalance.diagnose_collapse([[0.0, float("nan")], [1.0, 0.0]], [0, 1], [0, 1])
    with pytest.raises(TypeError, match="class indices"):
        losses.FocalLoss(2.0)(torch.randn(4, 3), torch.tensor([0.0, 1.0, 2.0, 1.0]))
    roberta = RobertaModel(RobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=16, max_position_embeddings=20))
    with pytest.raises(ValueError, match="RoBERTa-style"):
        embeddings.build_input_embeddings(roberta, torch.tensor([[0, 5, 6, 2]]))


def test_an_uncached_hub_tokenizer_says_how_to_get_it(monkeypatch):
    from bert_workbook import assets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(assets.AssetUnavailableError):
        assets.load_slow_tokenizer("bert-base-uncased-not-cached-here")
