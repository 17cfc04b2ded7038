"""Bad calls to the public helpers raise a TypeError or ValueError that names the argument.

The calls are the slips a learner makes: a tokenizer where the model belongs (and back), a
string where a list of them belongs, an empty list, a mask or labels of the wrong length, a size
of zero. Before, most gave a silent wrong result or an error from deep inside a library."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification, BertModel

from bert_workbook import (
    attention,
    context,
    data,
    electra,
    embeddings,
    family,
    imbalance,
    masking,
    mlm,
    ner,
    noise,
    subword,
    timing,
    wordpiece,
)
from bert_workbook.data import CONLL_TAGS


def _config(**extra) -> BertConfig:
    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, **extra)


@pytest.fixture(scope="module")
def o(tokenizer):
    """Everything the bad calls need: the course's tokenizer, tiny random models, a batch."""
    torch.manual_seed(0)
    batch = tokenizer(["the cat sat on the mat", "a dog"], padding=True, return_tensors="pt")
    ids = batch["input_ids"]
    labels = torch.full_like(ids, masking.IGNORE_INDEX)
    labels[0, 2] = ids[0, 2]
    encoder = BertModel(_config()).eval()
    return SimpleNamespace(
        tok=tokenizer,
        lm=BertForMaskedLM(_config()).eval(),
        tagger=BertForTokenClassification(_config(num_labels=len(CONLL_TAGS),
                                                  id2label=dict(enumerate(CONLL_TAGS)))).eval(),
        encoder=encoder,
        layer=encoder.encoder.layer[0],
        ids=ids,
        mask=batch["attention_mask"],
        labels=labels,
        windows=torch.randint(1000, 2000, (4, 16), generator=torch.Generator().manual_seed(0)),
        qkv=torch.randn(2, 2, ids.shape[1], 4),
    )


# (id, the bad call, the error it must raise, the argument its message must name)
BAD_CALLS = [
    # ner
    ("predict_word_tags: strings, not word lists",
     lambda o: ner.predict_word_tags(o.tagger, o.tok, ["Paris is big"]), TypeError, "sentences"),
    ("predict_word_tags: one string",
     lambda o: ner.predict_word_tags(o.tagger, o.tok, "Paris is big"), TypeError, "sentences"),
    ("predict_word_tags: tokenizer and model swapped",
     lambda o: ner.predict_word_tags(o.tok, o.tagger, [["Paris"]]), TypeError, "model"),
    ("predict_word_tags: a model as tokenizer",
     lambda o: ner.predict_word_tags(o.tagger, o.tagger, [["Paris"]]), TypeError, "tokenizer"),
    ("predict_word_tags: batch_size 0",
     lambda o: ner.predict_word_tags(o.tagger, o.tok, [["Paris"]], batch_size=0), ValueError, "batch_size"),
    ("align_labels_to_tokens: word ids and labels swapped",
     lambda o: ner.align_labels_to_tokens([None, 0, 1, None], [0, 1]), TypeError, "word_labels"),
    ("word_predictions: a strategy where num_words belongs",
     lambda o: ner.word_predictions(torch.zeros(3, 9), [None, 0, None], "first"), ValueError, "num_words"),
    ("word_predictions: word ids and logits swapped",
     lambda o: ner.word_predictions([None, 0, None], torch.zeros(3, 9), 1), TypeError, "token_logits"),
    ("character_spans: one string of words",
     lambda o: ner.character_spans("Paris is big", [("LOC", 0, 1)]), TypeError, "words"),
    ("character_spans: a span past the last word",
     lambda o: ner.character_spans(["Paris"], [("LOC", 0, 2)]), ValueError, "spans"),
    ("span_scores: BIO tags, not spans",
     lambda o: ner.span_scores([["B-PER", "O"]], [["B-PER", "O"]]), TypeError, "gold"),
    ("pipeline_spans: texts and tagger swapped",
     lambda o: ner.pipeline_spans(["Paris"], lambda texts, batch_size: []), TypeError, "tagger"),
    # mlm
    ("token_windows: texts shorter than one window",
     lambda o: mlm.token_windows(o.tok, ["a short text"], 64), ValueError, "texts"),
    ("token_windows: no texts",
     lambda o: mlm.token_windows(o.tok, [], 16), ValueError, "texts"),
    ("token_windows: texts and tokenizer swapped",
     lambda o: mlm.token_windows(["a text"], o.tok, 16), TypeError, "tokenizer"),
    ("token_windows: a model as tokenizer",
     lambda o: mlm.token_windows(o.lm, ["a text"], 16), TypeError, "tokenizer"),
    ("token_counts: texts and tokenizer swapped",
     lambda o: mlm.token_counts(["a text"], o.tok), TypeError, "tokenizer"),
    ("most_frequent_ids: an excluded id outside the counts",
     lambda o: mlm.most_frequent_ids(torch.ones(10), 3, exclude=[10]), ValueError, "exclude"),
    ("special_tokens_mask: ids and tokenizer swapped",
     lambda o: mlm.special_tokens_mask(o.tok, o.ids), TypeError, "input_ids"),
    ("masked_lm_loss: no labelled position",
     lambda o: mlm.masked_lm_loss(o.lm, o.ids, torch.full_like(o.ids, -100)), ValueError, "labels"),
    ("masked_lm_loss: a tokenizer as model",
     lambda o: mlm.masked_lm_loss(o.tok, o.ids, o.labels), TypeError, "model"),
    ("masked_lm_loss: labels of the wrong length",
     lambda o: mlm.masked_lm_loss(o.lm, o.ids, o.labels[:, :-1]), ValueError, "labels"),
    ("logits_at_labels: labels of the wrong length",
     lambda o: mlm.logits_at_labels(o.lm, o.ids, o.labels[:, :-1]), ValueError, "labels"),
    ("fill_mask: model and tokenizer swapped",
     lambda o: mlm.fill_mask(o.tok, o.lm, "a [MASK] day"), TypeError, "model"),
    ("fill_mask: a list of texts",
     lambda o: mlm.fill_mask(o.lm, o.tok, ["a [MASK] day"]), TypeError, "text"),
    ("accuracy_by_status: a tokenizer as model",
     lambda o: mlm.accuracy_by_status(o.tok, o.ids, o.ids, o.labels, 103), TypeError, "model"),
    ("train_masked_lm: windows and tokenizer swapped",
     lambda o: mlm.train_masked_lm(o.lm, o.tok, o.windows, 1, progress=False), TypeError, "windows"),
    ("train_masked_lm: batch_size 0",
     lambda o: mlm.train_masked_lm(o.lm, o.windows, o.tok, 1, batch_size=0, progress=False),
     ValueError, "batch_size"),
    # masking
    ("masked_rows: a model as tokenizer",
     lambda o: masking.masked_rows(o.lm, "a text"), TypeError, "tokenizer"),
    ("mask_tokens: random_token_ids a list",
     lambda o: masking.mask_tokens(o.ids, torch.zeros_like(o.ids), 30522, 103, random_token_ids=[5, 6]),
     TypeError, "random_token_ids"),
    ("split_word_share: word_ids straight from word_ids()",
     lambda o: masking.split_word_share(torch.zeros(1, 3), [None, 0, None]), TypeError, "word_ids"),
    # wordpiece
    ("wordpiece_tokenize_word: the tokenizer as vocab",
     lambda o: wordpiece.wordpiece_tokenize_word("cats", o.tok), TypeError, "vocab"),
    ("wordpiece_tokenize_word: max_chars 0",
     lambda o: wordpiece.wordpiece_tokenize_word("cats", {"cats"}, max_chars=0), ValueError, "max_chars"),
    ("split_into_words: a model as tokenizer",
     lambda o: wordpiece.split_into_words(o.encoder, "a text"), TypeError, "tokenizer"),
    ("distinct_words: one string",
     lambda o: wordpiece.distinct_words(o.tok, "one text"), TypeError, "texts"),
    ("unk_rate: one string",
     lambda o: wordpiece.unk_rate(o.tok, "one text"), TypeError, "texts"),
    ("token_rows: a model as tokenizer",
     lambda o: wordpiece.token_rows(o.encoder, "a text"), TypeError, "tokenizer"),
    ("vocabulary_breakdown: one string",
     lambda o: wordpiece.vocabulary_breakdown("[CLS]"), TypeError, "vocab"),
    # subword
    ("train_tokenizer: one text",
     lambda o: subword.train_tokenizer("bpe", "one text", 400), TypeError, "texts"),
    ("tokens_per_word: texts and tokenizer swapped",
     lambda o: subword.tokens_per_word(["a text"], o.tok), TypeError, "tokenizer"),
    ("unknown_share: one string",
     lambda o: subword.unknown_share(o.tok, "a text"), TypeError, "texts"),
    ("boundary_marker: a model as tokenizer",
     lambda o: subword.boundary_marker(o.encoder), TypeError, "tokenizer"),
    # embeddings
    ("word_vectors_by_layer: model and tokenizer swapped",
     lambda o: embeddings.word_vectors_by_layer(o.tok, o.encoder, "a cat", "cat"), TypeError, "model"),
    ("pca_2d: a NumPy array",
     lambda o: embeddings.pca_2d(np.zeros((5, 3))), TypeError, "vectors"),
    ("embedding_table_sizes: a model, not its config",
     lambda o: embeddings.embedding_table_sizes(o.encoder), TypeError, "config"),
    ("mean_pairwise_cosine: pairs 0",
     lambda o: embeddings.mean_pairwise_cosine(torch.randn(5, 3), pairs=0), ValueError, "pairs"),
    ("next_sentence_pairs: documents as strings",
     lambda o: embeddings.next_sentence_pairs(["One. Two.", "Three. Four."], 2), TypeError, "documents"),
    ("next_sentence_pairs: n negative",
     lambda o: embeddings.next_sentence_pairs([["a", "b"], ["c"]], -1), ValueError, "n"),
    # attention
    ("scaled_dot_product_attention: a mask of the wrong length",
     lambda o: attention.scaled_dot_product_attention(o.qkv, o.qkv, o.qkv, o.mask[:, :-1]),
     ValueError, "attention_mask"),
    ("attention_maps: a mask of the wrong length",
     lambda o: attention.attention_maps(o.encoder, o.ids, o.mask[:, :-1]), ValueError, "attention_mask"),
    ("attention_maps: a tokenizer as encoder",
     lambda o: attention.attention_maps(o.tok, o.ids, o.mask), TypeError, "encoder"),
    ("attention_shares: a mask of the wrong length",
     lambda o: attention.attention_shares(torch.zeros(1, 2, 2, o.ids.shape[1], o.ids.shape[1]), o.ids,
                                          o.mask[:, :-1], 101, 102), ValueError, "attention_mask"),
    ("attention_shares_over: encoder and tokenizer swapped",
     lambda o: attention.attention_shares_over(o.tok, o.encoder, ["a text"]), TypeError, "encoder"),
    ("attention_shares_over: batch_size 0",
     lambda o: attention.attention_shares_over(o.encoder, o.tok, ["a text"], batch_size=0),
     ValueError, "batch_size"),
    ("project_heads: the model, not a layer",
     lambda o: attention.project_heads(o.encoder, torch.randn(1, 3, 32)), TypeError, "layer"),
    ("encoder_layer_by_hand: the model, not a layer",
     lambda o: attention.encoder_layer_by_hand(o.encoder, torch.randn(1, 3, 32)), TypeError, "layer"),
    ("time_attention_and_feed_forward: one length, not a list",
     lambda o: attention.time_attention_and_feed_forward(o.layer, 16), TypeError, "lengths"),
    # family
    ("build_model: a name, not a config",
     lambda o: family.build_model("BERT-base"), TypeError, "config"),
    ("architecture: a model, not its config",
     lambda o: family.architecture(o.encoder), TypeError, "config"),
    ("count_parameters: a config, not a model",
     lambda o: family.count_parameters(o.encoder.config), TypeError, "model"),
    ("bench_batch: batch_size 0",
     lambda o: family.bench_batch(o.encoder, 0, 16), ValueError, "batch_size"),
    ("speed_table: builders a list",
     lambda o: family.speed_table([lambda: o.encoder], [(1, 8)], progress=False), TypeError, "builders"),
    ("speed_table: models, not functions that build them",
     lambda o: family.speed_table({"tiny": o.encoder}, [(1, 8)], progress=False), TypeError, "builders"),
    ("speed_grid: one batch size, not a list",
     lambda o: family.speed_grid({"tiny": lambda: o.encoder}, 1, [8], progress=False),
     TypeError, "batch_sizes"),
    # electra
    ("corrupt_with_generator: ids and tokenizer swapped",
     lambda o: electra.corrupt_with_generator(o.lm, o.tok, o.windows), TypeError, "input_ids"),
    ("corrupt_with_generator: chunk_size 0",
     lambda o: electra.corrupt_with_generator(o.lm, o.windows, o.tok, chunk_size=0), ValueError, "chunk_size"),
    ("corrupt_with_generator: mask_probability 1.5",
     lambda o: electra.corrupt_with_generator(o.lm, o.windows, o.tok, mask_probability=1.5),
     ValueError, "mask_probability"),
    ("train_discriminator: batch_size 0",
     lambda o: electra.train_discriminator(o.tagger, o.windows, torch.zeros_like(o.windows), steps=1,
                                           batch_size=0, progress=False), ValueError, "batch_size"),
    ("replaced_probability: a tokenizer as discriminator",
     lambda o: electra.replaced_probability(o.tok, o.windows), TypeError, "discriminator"),
    # context
    ("correct_by_side: the tokenizer where mask_token_id belongs",
     lambda o: context.correct_by_side(o.lm, o.windows, o.tok), ValueError, "mask_token_id"),
    ("correct_by_side: a tokenizer as model",
     lambda o: context.correct_by_side(o.tok, o.windows, 103), TypeError, "model"),
    ("polarity_score: one text",
     lambda o: context.polarity_score(o.lm, o.tok, "a [MASK] film", ["good"], ["bad"]), TypeError, "texts"),
    ("polarity_score: one word, not a list",
     lambda o: context.polarity_score(o.lm, o.tok, ["a [MASK] film"], "good", ["bad"]), TypeError, "positive"),
    ("polarity_score: model and tokenizer swapped",
     lambda o: context.polarity_score(o.tok, o.lm, ["a [MASK] film"], ["good"], ["bad"]), TypeError, "model"),
    # noise
    ("add_frequent_token_noise: the model, not its embedding layer",
     lambda o: noise.add_frequent_token_noise(o.encoder, [5], 0.1), TypeError, "embedding"),
    ("add_frequent_token_noise: a word, not token ids",
     lambda o: noise.add_frequent_token_noise(o.encoder.embeddings.word_embeddings, "the", 0.1),
     TypeError, "token_ids"),
    # imbalance
    ("imbalanced_subset: per_class a list",
     lambda o: imbalance.imbalanced_subset([0, 1, 1], [1, 1], seed=0), TypeError, "per_class"),
    ("oversample_minority: factors where the seed belongs",
     lambda o: imbalance.oversample_minority([0, 1, 1], {0: 2.0}), ValueError, "seed"),
    ("oversample_minority: factors a list",
     lambda o: imbalance.oversample_minority([0, 1, 1], 0, [2.0]), TypeError, "factors"),
    ("undersample_majority: a seed of None",
     lambda o: imbalance.undersample_majority([0, 1, 1], None), ValueError, "seed"),
    # timing
    ("items_per_second: items and fn swapped",
     lambda o: timing.items_per_second([1, 2, 3], len), TypeError, "fn"),
    ("items_per_second: a generator of items",
     lambda o: timing.items_per_second(len, (i for i in range(3))), TypeError, "items"),
    ("fastest_seconds: a result, not a function",
     lambda o: timing.fastest_seconds(3.0), TypeError, "fn"),
    # data
    ("stratified_split_indices: fractions a list",
     lambda o: data.stratified_split_indices([0, 1, 0, 1], [0.5, 0.5]), TypeError, "fractions"),
]


@pytest.mark.parametrize("call, error, argument", [row[1:] for row in BAD_CALLS],
                         ids=[row[0] for row in BAD_CALLS])
def test_a_bad_call_raises_a_clear_error_naming_the_argument(o, call, error, argument):
    with pytest.raises(error) as raised:
        call(o)
    assert type(raised.value) is error  # not a subclass from deep inside a library
    assert re.match(rf"{argument}\b", str(raised.value)), str(raised.value)  # the message opens with its name


# Valid calls at the edge of the new checks: still accepted, with the results they always had.

def test_token_windows_still_cuts_a_window_that_the_texts_fill_exactly(o):
    the, cat = o.tok.convert_tokens_to_ids(["the", "cat"])
    cls, sep = o.tok.cls_token_id, o.tok.sep_token_id
    # "the cat" + [SEP] is 3 tokens: exactly the body of one window of 5
    assert mlm.token_windows(o.tok, ["the cat"], 5).tolist() == [[cls, the, cat, sep, sep]]
    assert mlm.token_windows(o.tok, ("the cat", "the cat"), 5).shape == (2, 5)  # any sequence of texts


def test_masked_lm_loss_with_one_labelled_position_is_its_cross_entropy(o):
    with torch.no_grad():
        logits = o.lm(input_ids=o.ids).logits
        expected = torch.nn.functional.cross_entropy(logits[0, 2:3], o.ids[0, 2:3])
        assert torch.allclose(mlm.masked_lm_loss(o.lm, o.ids, o.labels), expected, atol=1e-6)


def test_predict_word_tags_takes_any_sequence_of_word_sequences(o):
    as_lists = ner.predict_word_tags(o.tagger, o.tok, [["Paris", "is", "big"], ["Hi"]], batch_size=1)
    as_tuples = ner.predict_word_tags(o.tagger, o.tok, (("Paris", "is", "big"), ("Hi",)), batch_size=1)
    assert as_lists == as_tuples and [len(tags) for tags in as_lists] == [3, 1]
    assert ner.predict_word_tags(o.tagger, o.tok, []) == []


def test_a_span_may_end_at_the_last_word():
    assert ner.character_spans(["Mt.", "Sanitas", "is"], [("LOC", 0, 2)]) == ("Mt. Sanitas is", [("LOC", 0, 11)])
    assert ner.character_spans(("a", "b"), [("X", 1, 2)], separator="_") == ("a_b", [("X", 2, 3)])


def test_the_checks_take_numpy_integers_and_the_last_valid_id():
    assert mlm.most_frequent_ids(torch.arange(10), 3, exclude=[9]).tolist() == [8, 7, 6]
    assert ner.word_predictions(torch.eye(3), [None, 0, 1], np.int64(2)) == [1, 2]
    labels = [0, 0, 0, 1]
    assert imbalance.oversample_minority(labels, np.int64(3)).tolist() == \
        imbalance.oversample_minority(labels, 3).tolist()
    assert embeddings.next_sentence_pairs([["a", "b"], ("c",)], 0) == []


def test_one_mask_row_still_serves_every_row_of_the_batch():
    q = torch.randn(2, 1, 3, 4, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(attention.scaled_dot_product_attention(q, q, q, mask),
                       attention.scaled_dot_product_attention(q, q, q, mask.expand(2, 3)))


def test_any_container_of_entries_is_a_vocabulary():
    from types import MappingProxyType

    entries = {"un": 0, "##believ": 1, "##able": 2}
    for vocab in (entries, set(entries), list(entries), MappingProxyType(entries)):
        assert wordpiece.wordpiece_tokenize_word("unbelievable", vocab) == ["un", "##believ", "##able"]
    assert wordpiece.vocabulary_breakdown(iter(entries))["continuations (##)"] == 2


@pytest.mark.parametrize("kwargs, name", [
    ({"processes": 0}, "processes"),
    ({"per_device_batch": -8}, "per_device_batch"),
    ({"examples": 0}, "examples"),
    ({"accumulation": 1.5}, "accumulation"),
    ({"warmup_ratio": 2.0}, "warmup_ratio"),
])
def test_plan_run_refuses_sizes_that_are_not_positive_counts(kwargs, name):
    from bert_workbook import finetune

    settings = {"examples": 1000, "per_device_batch": 16, "processes": 2, "accumulation": 1, "epochs": 3, **kwargs}
    with pytest.raises(ValueError, match=f"^{name}"):
        finetune.plan_run(**settings)
    assert finetune.plan_run(1000, 16, 2, 1, 3) == (32, 32, 96, 9)
