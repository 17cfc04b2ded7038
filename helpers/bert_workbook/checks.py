"""The exercise checks under their first names, for notebooks downloaded before the exercise
modules existed. New notebooks use one module per notebook (``bert_workbook.ex01`` ...
``ex08``), whose exercises also offer ``hint()`` and ``solution()``; the verdict type and the
shared machinery live in :mod:`bert_workbook.exercise`.
"""

from bert_workbook.ex01 import (
                                NOTEBOOK_01_WORDS,
                                WORDPIECE_EDGE_WORDS,
                                check_first_subword_mask,
                                check_wordpiece,
                                wordpiece_held_out_words,
)
from bert_workbook.ex02 import MASKING_SIGMAS, check_mask_tokens, masking_batch
from bert_workbook.ex03 import EMBEDDING_TOLERANCE, check_build_input_embeddings
from bert_workbook.ex04 import _training_step_mistakes, check_cls_classifier, check_training_step
from bert_workbook.ex05 import check_oversample
from bert_workbook.ex06 import check_focal_loss
from bert_workbook.ex07 import check_align_labels
from bert_workbook.ex08 import check_factorized_embeddings
from bert_workbook.exercise import HELD_OUT_SEED, CheckResult

__all__ = [
    "CheckResult", "EMBEDDING_TOLERANCE", "HELD_OUT_SEED", "MASKING_SIGMAS", "NOTEBOOK_01_WORDS",
    "WORDPIECE_EDGE_WORDS", "_training_step_mistakes", "check_align_labels", "check_build_input_embeddings",
    "check_cls_classifier", "check_factorized_embeddings", "check_first_subword_mask", "check_focal_loss",
    "check_mask_tokens", "check_oversample", "check_training_step", "check_wordpiece", "masking_batch",
    "wordpiece_held_out_words",
]
