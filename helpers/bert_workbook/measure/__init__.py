"""The measurement kit: experiments cheap enough to run to convergence, over many draws, with
uncertainty. Notebooks 04 and 05 (and later 06) build their comparisons on it.

* **Feature cache** (:func:`encode_features`): run the frozen encoder once over a dataset and keep
  the [CLS] and mean-pooled vector of every layer, in memory (and optionally on disk).
* **Heads to convergence** on cached features: full-batch L-BFGS (:func:`fit_linear_head`,
  deterministic, milliseconds) or mini-batch AdamW with a learning curve (:func:`train_head`),
  whose batches matter when the lesson is about batches (samplers, class weights).
* **Partial fine-tuning** (:func:`cache_hidden_states`, :class:`TopLayersClassifier`,
  :func:`train_top_layers`): freeze the embeddings and the lower layers, compute the lower layers'
  output once, and fine-tune only the top layers and the head from that cache.
* **Learning curves**: every trainer evaluates every ``eval_every`` steps (loss, macro-F1, AUC),
  so a step budget is a point on a curve, never a verdict.
* **Metrics under resampling** (:func:`weighted_auc`, :func:`weighted_argmax_f1`): the evaluation
  set's share of a comparison's variance, for ``stats.evaluation_set_variance``; the intervals
  and verdicts themselves live in :mod:`bert_workbook.stats`.

One module per part: ``features`` (the cache), ``heads`` (heads and the losses they share),
``partial`` (partial fine-tuning), ``metrics`` (how logits are judged, thresholds, metrics under
resampling), ``_common`` (input checks). Notebooks use them through this package:
``from bert_workbook import measure``, then ``measure.fit_linear_head(...)``.
* **Decisions** (:func:`held_out_threshold_f1`, :func:`adjust_logits`,
  :func:`logit_adjusted_cross_entropy`, :func:`weighted_cross_entropy`): a threshold tuned on one
  half of the held-out data and scored on the other, and the logit-adjustment family.
"""

from bert_workbook.measure._common import class_prior, log_prior_bias
from bert_workbook.measure.features import (
    FeatureSet,
    clear_feature_cache,
    dataset_key,
    encode_features,
    weights_digest,
)
from bert_workbook.measure.heads import (
    Curve,
    LinearHead,
    Run,
    _batch_order,
    _group_by_length,
    choose_l2,
    fit_linear_head,
    logit_adjusted_cross_entropy,
    train_head,
    weighted_cross_entropy,
)
from bert_workbook.measure.metrics import (
    RESAMPLED,
    adjust_logits,
    best_threshold,
    binary_auc,
    decision_scores,
    early_stopped_scores,
    evaluate_logits,
    held_out_threshold_f1,
    macro_f1_at_thresholds,
    margin,
    stratified_halves,
    weighted_argmax_f1,
    weighted_auc,
)
from bert_workbook.measure.partial import (
    CachedStates,
    LiveStates,
    TopLayersClassifier,
    cache_hidden_states,
    predict_cached,
    train_top_layers,
)

__all__ = [
    "RESAMPLED",
    "class_prior",
    "log_prior_bias",
    "FeatureSet",
    "clear_feature_cache",
    "dataset_key",
    "encode_features",
    "weights_digest",
    "Curve",
    "LinearHead",
    "Run",
    "_batch_order",
    "_group_by_length",
    "choose_l2",
    "fit_linear_head",
    "logit_adjusted_cross_entropy",
    "train_head",
    "weighted_cross_entropy",
    "adjust_logits",
    "best_threshold",
    "binary_auc",
    "decision_scores",
    "early_stopped_scores",
    "evaluate_logits",
    "held_out_threshold_f1",
    "macro_f1_at_thresholds",
    "margin",
    "stratified_halves",
    "weighted_argmax_f1",
    "weighted_auc",
    "CachedStates",
    "LiveStates",
    "TopLayersClassifier",
    "cache_hidden_states",
    "predict_cached",
    "train_top_layers",
]
