"""Exercise checks: each ``check_*`` runs a learner's function against the reference behaviour.

A check returns a :class:`CheckResult` whose text says what passed or failed and gives a hint;
it never raises for a wrong answer, so the notebook keeps running. ``CheckResult.choose`` lets
later cells fall back to the reference implementation when the exercise is not solved yet.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from functools import lru_cache

HELD_OUT_SEED = 2024


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one exercise check."""

    exercise: str
    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = "PASSED" if self.passed else "NOT YET"
        text = f"[{mark}] {self.exercise}: {self.message}"
        if self.hint and not self.passed:
            text += f"\nHint: {self.hint}"
        return text

    __repr__ = __str__

    def choose(self, mine, reference):
        """``(mine, note)`` when the check passed, else ``(reference, note)``: a safe fallback."""
        if self.passed:
            return mine, f"Using your implementation for {self.exercise}."
        return reference, (
            f"Using the reference implementation for {self.exercise} "
            f"({reference.__module__}.{reference.__qualname__}): your version has not passed its "
            "check yet, so the cells below use the reference and still run."
        )


def _call_or_verdict(exercise: str, fn, *args):
    """Run ``fn(*args)``; return ``(output, None)`` or ``(None, failing CheckResult)``."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, CheckResult(
            exercise, False, "not implemented yet.", "replace the `raise NotImplementedError`."
        )
    except Exception as error:  # a learner's bug: report it, do not crash the notebook
        return None, CheckResult(
            exercise, False, f"your function raised {type(error).__name__}: {error}"
        )


def _shape_verdict(exercise: str, out, expected, what: str, hint: str) -> CheckResult | None:
    """A failing verdict if ``out`` is not a tensor shaped like ``expected``, else None."""
    import torch

    if isinstance(out, torch.Tensor) and out.shape == expected.shape:
        return None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    return CheckResult(exercise, False, f"{what} of shape {tuple(expected.shape)}, got {shape}.", hint)


@lru_cache(maxsize=1)
def wordpiece_held_out_words(n: int = 1000) -> tuple[str, ...]:
    """``n`` distinct words from IMDB test reviews, half of which split into several pieces.

    These are words the notebook never shows, normalized and pre-tokenized as BERT does, so the
    learner's function sees exactly what the library's WordPiece model sees.
    """
    from bert_workbook.assets import load_tokenizer
    from bert_workbook.data import load_course_dataset
    from bert_workbook.wordpiece import distinct_words

    tokenizer = load_tokenizer("embedded")
    texts = load_course_dataset("imdb")["test"]["text"][:3000]
    words = distinct_words(tokenizer, texts, exclude=NOTEBOOK_01_WORDS)
    rng = random.Random(HELD_OUT_SEED)
    rng.shuffle(words)
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    multi = [w for w, ids in zip(words, pieces) if len(ids) > 1][: n // 2]
    single = [w for w, ids in zip(words, pieces) if len(ids) == 1][: n - len(multi)]
    if len(multi) + len(single) < n:
        raise RuntimeError(f"only {len(multi) + len(single)} held-out words, wanted {n}")
    return tuple(sorted(multi + single))


# Normalized words that must become [UNK] as a whole: an unknown character inside, or too long.
WORDPIECE_EDGE_WORDS = ("wow🙂", "🙂", "ᚠᚢᚦ", "a" * 150)

NOTEBOOK_01_WORDS = frozenset(
    {"unaffable", "tokenization", "hyperparameterization", "the", "cat", "running"}
)


def check_wordpiece(fn, n_words: int = 1000) -> CheckResult:
    """Compare ``fn(word, vocab)`` with the library tokenizer on held-out words and edge cases."""
    from bert_workbook.assets import load_tokenizer

    exercise = "Exercise 1 (WordPiece)"
    tokenizer = load_tokenizer("embedded")
    vocab = tokenizer.get_vocab()
    words = wordpiece_held_out_words(n_words) + WORDPIECE_EDGE_WORDS
    expected_pieces = {word: tokenizer.tokenize(word) for word in words}
    wrong = []
    for word in words:
        got, failed = _call_or_verdict(exercise, fn, word, vocab)
        if failed is not None:  # (a failing CheckResult is falsy)
            return failed
        if got is None:
            return CheckResult(
                exercise, False, f"your function returned None for {word!r}.",
                "did you forget the `return` statement?",
            )
        if not isinstance(got, (list, tuple)):
            return CheckResult(
                exercise, False, f"your function returned {type(got).__name__} for {word!r}.",
                "return a list of token strings, e.g. ['token', '##ization'].",
            )
        if list(got) != expected_pieces[word]:
            wrong.append((word, got, expected_pieces[word]))
    multi = sum(len(pieces) > 1 for pieces in expected_pieces.values())
    agree = len(words) - len(wrong)
    summary = (
        f"{agree}/{len(words)} held-out words agree with the library tokenizer "
        f"({100 * agree / len(words):.1f}%; {multi} of the words split into several pieces)."
    )
    if not wrong:
        return CheckResult(exercise, True, summary)
    examples = "; ".join(f"{w!r}: got {g}, expected {e}" for w, g, e in wrong[:3])
    return CheckResult(
        exercise,
        False,
        f"{summary} For example {examples}.",
        "take the longest vocabulary entry that starts the remaining text; pieces after the "
        "first need the '##' prefix; if nothing matches, the whole word is [UNK].",
    )


FIRST_SUBWORD_SENTENCES = (
    ("Tokenizers split unaffable words into pieces.", None),
    ("Mt. Sanitas is in Sunshine Canyon.", None),
    ("New York New York", None),
    ("Hyperparameterization!", "Re-tokenization, again: unaffable."),
    ("a", "b"),
)


def check_first_subword_mask(fn) -> CheckResult:
    """Compare ``fn(word_ids)`` with the reference on sentences, pairs and held-out reviews."""
    from bert_workbook.assets import load_tokenizer
    from bert_workbook.data import load_course_dataset
    from bert_workbook.wordpiece import first_subword_mask

    exercise = "Exercise 2 (first-subword mask)"
    tokenizer = load_tokenizer("embedded")
    reviews = load_course_dataset("rotten_tomatoes")["test"]["text"][:300]
    cases = list(FIRST_SUBWORD_SENTENCES) + [(text, None) for text in reviews]
    for text, pair in cases:
        word_ids = tokenizer(text, pair, truncation=True, max_length=64).word_ids()
        got, failed = _call_or_verdict(exercise, fn, list(word_ids))
        if failed is not None:  # (a failing CheckResult is falsy)
            return failed
        expected = first_subword_mask(word_ids)
        if not isinstance(got, (list, tuple)) or [bool(x) for x in got] != expected:
            where = f"{text!r}" + (f" + {pair!r}" if pair else "")
            return CheckResult(
                exercise,
                False,
                f"wrong mask for {where}: word_ids {word_ids}, got {got}, expected {expected}.",
                "a token starts a word when its word id is not None and differs from the "
                "previous token's word id.",
            )
    return CheckResult(
        exercise, True, f"{len(cases)} encodings (single sentences, pairs, truncated reviews) agree."
    )


MASKING_SIGMAS = 4.5  # a correct implementation fails a bound about once in 150,000 runs


@lru_cache(maxsize=1)
def masking_batch(min_tokens: int = 200_000, length: int = 128):
    """Real IMDB test reviews as padded batches: (input_ids, special_tokens_mask) with at least
    ``min_tokens`` non-special tokens."""
    from bert_workbook.assets import load_tokenizer
    from bert_workbook.data import load_course_dataset

    tokenizer = load_tokenizer("embedded")
    texts = load_course_dataset("imdb")["test"]["text"]
    encoded = tokenizer(texts[:2500], truncation=True, max_length=length, padding="max_length",
                        return_special_tokens_mask=True, return_tensors="pt")
    ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
    eligible = (special == 0).sum(dim=1).cumsum(0)
    rows = int((eligible < min_tokens).sum()) + 1
    if rows > len(ids):
        raise RuntimeError(f"not enough text for {min_tokens} tokens")
    return ids[:rows], special[:rows]


def check_mask_tokens(fn, seed: int = 0) -> CheckResult:
    """Run ``fn`` on >= 200,000 real tokens and test BERT's masking rule statistically.

    ``fn(input_ids, special_tokens_mask, vocab_size, mask_token_id, mlm_probability, generator)``
    must return ``(inputs, labels)``. Each share must lie within ``MASKING_SIGMAS`` binomial
    standard deviations of its target.
    """
    import torch

    from bert_workbook.masking import IGNORE_INDEX, binomial_bound, corruption_counts

    exercise = "Exercise (mask_tokens)"
    ids, special = masking_batch()
    vocab_size, mask_id = 30522, 103
    hint = ("select each non-special token with probability mlm_probability; then, among the "
            "selected only, 80% -> [MASK], 10% -> a random token, 10% unchanged.")

    def run(s):
        out, failed = _call_or_verdict(exercise, fn, ids.clone(), special.clone(), vocab_size,
                                       mask_id, 0.15, torch.Generator().manual_seed(s))
        if failed is None and (not isinstance(out, tuple) or len(out) != 2):
            failed = CheckResult(exercise, False, "return a tuple (inputs, labels).", hint)
        return out, failed

    out, failed = run(seed)
    if failed is not None:
        return failed
    inputs, labels = out
    if not (isinstance(inputs, torch.Tensor) and isinstance(labels, torch.Tensor)):
        return CheckResult(exercise, False, "inputs and labels must be tensors.", hint)
    if inputs.shape != ids.shape or labels.shape != ids.shape:
        return CheckResult(exercise, False, f"inputs/labels shapes {tuple(inputs.shape)}/"
                           f"{tuple(labels.shape)} differ from input_ids {tuple(ids.shape)}.", hint)
    is_special = special.bool()
    selected = labels != IGNORE_INDEX
    problems = []
    if (selected & is_special).any():
        problems.append("special tokens or padding were selected")
    if (inputs[~selected] != ids[~selected]).any():
        problems.append("tokens that were not selected were changed (did you apply 80/10/10 "
                        "to every token instead of only the selected ones?)")
    if (labels[selected] != ids[selected]).any():
        problems.append("labels at selected positions must be the original token ids")
    counts = corruption_counts(ids, inputs, labels, special, mask_id)
    n, m = counts["eligible"], max(counts["selected"], 1)
    shares = [
        ("selected", counts["selected"] / n, 0.15, n),
        ("[MASK] among selected", counts["mask"] / m, 0.8, m),
        ("random among selected", counts["random"] / m, 0.1, m),
        ("kept among selected", counts["kept"] / m, 0.1, m),
    ]
    lines = []
    for name, share, target, total in shares:
        bound = binomial_bound(target, total, MASKING_SIGMAS)
        ok = abs(share - target) <= bound
        lines.append(f"{name}: {share:.4f} (target {target} ± {bound:.4f}) {'ok' if ok else 'OUT'}")
        if not ok:
            problems.append(f"{name} is {share:.4f}, outside {target} ± {bound:.4f}")
    randoms = inputs[selected & (inputs != ids) & (inputs != mask_id)]
    if len(randoms):
        distinct = len(torch.unique(randoms))
        expected = vocab_size * (1 - math.exp(-len(randoms) / vocab_size))
        lines.append(f"distinct random tokens: {distinct} of {len(randoms)} "
                     f"(uniform over the vocabulary: about {expected:.0f})")
        if distinct < 0.9 * expected:
            problems.append("random replacements are not spread over the vocabulary")
    again, _ = run(seed)
    if not (isinstance(again, tuple) and torch.equal(again[0], inputs) and torch.equal(again[1], labels)):
        problems.append("the same generator seed must give the same result")
    other, _ = run(seed + 1)
    if isinstance(other, tuple) and torch.equal(other[0], inputs):
        problems.append("a different seed gave identical masks: use the generator you are given")
    small_ids, small_special = ids[:2].clone(), special[:2].clone()
    bad_calls = {
        "mlm_probability=1.5": (small_ids, small_special, vocab_size, mask_id, 1.5),
        "mlm_probability=-0.1": (small_ids, small_special, vocab_size, mask_id, -0.1),
        "a special_tokens_mask of another shape": (small_ids, small_special[:, :-1], vocab_size, mask_id, 0.15),
    }
    for what, args in bad_calls.items():
        try:
            fn(*args, torch.Generator().manual_seed(seed))
        except ValueError:
            continue
        except Exception as error:  # a learner's function may raise anything
            problems.append(f"{what} raised {type(error).__name__}, expected ValueError")
            continue
        problems.append(f"{what} was accepted: raise ValueError")
    header = (f"{n:,} real tokens ({MASKING_SIGMAS}-sigma binomial bounds):\n  "
              + "\n  ".join(lines))
    if problems:
        return CheckResult(exercise, False, header + "\nProblems: " + "; ".join(problems) + ".", hint)
    return CheckResult(exercise, True, header)


EMBEDDING_TOLERANCE = 1e-6  # |mine - model| <= tol + tol * |model|, elementwise
EMBEDDING_SENTENCES = (
    ("The bank declined my payment.", None),
    ("The bank declined my payment.", "Please retry after some time."),
    ("Unaffable tokenizers", "were surprisingly good at hyperparameterization, weren't they?"),
)


def _embedding_cases():
    """(description, model, input_ids, token_type_ids): the embedded encoder on a sentence, a
    pair and a padded batch of pairs, and a small random BERT (other sizes, 3 segment types)."""
    import torch
    from transformers import BertConfig, BertModel

    from bert_workbook.assets import load_encoder, load_tokenizer

    tokenizer, encoder = load_tokenizer("embedded"), load_encoder("embedded")
    single = tokenizer(EMBEDDING_SENTENCES[0][0], return_tensors="pt")
    pair = tokenizer(*EMBEDDING_SENTENCES[1], return_tensors="pt")
    batch = tokenizer([a for a, _ in EMBEDDING_SENTENCES[1:]], [b for _, b in EMBEDDING_SENTENCES[1:]],
                      padding=True, return_tensors="pt")
    torch.manual_seed(HELD_OUT_SEED)
    config = BertConfig(vocab_size=500, hidden_size=48, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=96, max_position_embeddings=40, type_vocab_size=3,
                        layer_norm_eps=1e-7)
    small = BertModel(config).eval()
    with torch.no_grad():
        small.embeddings.LayerNorm.weight.uniform_(0.5, 2.0)
        small.embeddings.LayerNorm.bias.normal_(0, 0.5)
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    ids = torch.randint(500, (3, 40), generator=generator)
    types = torch.randint(3, (3, 40), generator=generator)
    return [
        ("one sentence", encoder, single["input_ids"], single["token_type_ids"]),
        ("a sentence pair", encoder, pair["input_ids"], pair["token_type_ids"]),
        ("a padded batch of pairs", encoder, batch["input_ids"], batch["token_type_ids"]),
        ("a random 48-wide BERT with 3 segment types", small, ids, types),
    ]


def _embedding_mistakes(model, ids, types):
    """What the usual wrong answers compute, to name the mistake in the verdict."""
    import torch

    e = model.embeddings
    positions = torch.arange(ids.shape[1])
    ln = e.LayerNorm
    word, seg = e.word_embeddings.weight[ids], e.token_type_embeddings.weight[types]
    pos = e.position_embeddings.weight[positions]
    shifted = e.position_embeddings.weight[(positions + 1).clamp(max=e.position_embeddings.num_embeddings - 1)]
    return {
        "LayerNorm is missing (BERT normalizes the sum)": word + seg + pos,
        "the segment (token type) embeddings are missing": ln(word + pos),
        "token_type_ids were ignored: every token got segment 0": ln(
            word + e.token_type_embeddings.weight[torch.zeros_like(types)] + pos),
        "positions must start at 0, not 1": ln(word + seg + shifted),
        "the position embeddings are missing": ln(word + seg),
    }


def check_build_input_embeddings(fn) -> CheckResult:
    """``fn(model, input_ids, token_type_ids)`` must equal the model's own embedding module
    (eval mode) to within ``EMBEDDING_TOLERANCE`` on four kinds of input."""
    import torch

    exercise = "Exercise (build_input_embeddings)"
    hint = ("look the ids up in model.embeddings.word_embeddings.weight, token_type_embeddings and "
            "position_embeddings (positions 0..length-1), add the three, then apply "
            "model.embeddings.LayerNorm.")
    lines = []
    for name, model, ids, types in _embedding_cases():
        with torch.no_grad():
            expected = model.embeddings(input_ids=ids, token_type_ids=types)
            out, failed = _call_or_verdict(exercise, fn, model, ids.clone(), types.clone())
        if failed is None:  # a failing CheckResult is falsy: compare with None
            failed = _shape_verdict(exercise, out, expected, f"on {name}, expected", hint)
        if failed is not None:
            return failed
        out = out.detach().float()
        error = float((out - expected).abs().max())
        if not torch.allclose(out, expected, atol=EMBEDDING_TOLERANCE, rtol=EMBEDDING_TOLERANCE):
            with torch.no_grad():
                for mistake, wrong in _embedding_mistakes(model, ids, types).items():
                    if torch.allclose(out, wrong, atol=1e-5, rtol=1e-5):
                        return CheckResult(exercise, False, f"on {name}: {mistake}.", hint)
            return CheckResult(exercise, False, f"on {name}, the largest difference from the "
                               f"model's own embeddings is {error:.2e}.", hint)
        lines.append(f"{name} {tuple(ids.shape)}: max difference {error:.1e}")
    return CheckResult(exercise, True, f"equal to the model's embedding module within "
                       f"{EMBEDDING_TOLERANCE:g}:\n  " + "\n  ".join(lines))


CLS_SENTENCES = ("A gripping, beautifully acted film.",
                 "Two hours of my life I will never get back, and the popcorn was stale too.")


def check_cls_classifier(cls) -> CheckResult:
    """``cls(encoder, num_labels)`` must give the logits of ``BertForSequenceClassification``
    when both share the encoder and the classifier weights (eval mode, padded batch)."""
    import torch
    from transformers import BertForSequenceClassification

    from bert_workbook.assets import load_encoder, load_tokenizer

    exercise = "Exercise (ClsClassifier.forward)"
    hint = ("run the encoder with input_ids, attention_mask and token_type_ids, take the hidden "
            "state at position 0 ([CLS]), apply the pooler (encoder.pooler: dense, then tanh), "
            "then dropout and self.classifier.")
    tokenizer, encoder = load_tokenizer("embedded"), load_encoder("embedded")
    settings = {k: v for k, v in encoder.config.to_dict().items() if k not in ("id2label", "label2id")}
    config = encoder.config.__class__.from_dict({**settings, "num_labels": 3})
    torch.manual_seed(HELD_OUT_SEED)
    reference = BertForSequenceClassification(config)
    reference.bert = encoder
    reference.eval()
    batch = tokenizer(list(CLS_SENTENCES), padding=True, return_tensors="pt")
    try:
        ours = cls(encoder, 3)
        ours.classifier.load_state_dict(reference.classifier.state_dict())
        ours.eval()
    except Exception as error:
        return CheckResult(exercise, False, f"building the model failed: {type(error).__name__}: "
                           f"{error}", "keep the __init__ given in the notebook.")
    with torch.no_grad():
        expected = reference(**batch).logits
        out, failed = _call_or_verdict(exercise, lambda: ours(**batch))
    if failed is None:
        failed = _shape_verdict(exercise, out, expected, "expected (batch, labels) logits", hint)
    if failed is not None:
        return failed
    if torch.allclose(out, expected, atol=1e-5, rtol=1e-5):
        return CheckResult(exercise, True, f"your logits equal BertForSequenceClassification's on a "
                           f"padded batch (max difference {float((out - expected).abs().max()):.1e}).")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
        unmasked = encoder(input_ids=batch["input_ids"]).last_hidden_state
        pool = encoder.pooler
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mistakes = {
            "the pooler (dense + tanh on [CLS]) is missing": hidden[:, 0],
            "you averaged over tokens; BERT's classifier reads the [CLS] position only":
                pool.activation(pool.dense((hidden * mask).sum(1) / mask.sum(1))),
            "the attention_mask was not passed, so padding changed the [CLS] vector":
                pool.activation(pool.dense(unmasked[:, 0])),
        }
        for mistake, features in mistakes.items():
            if torch.allclose(out, ours.classifier(features), atol=1e-5, rtol=1e-5):
                return CheckResult(exercise, False, mistake + ".", hint)
    return CheckResult(exercise, False, f"your logits differ from BertForSequenceClassification's by "
                       f"up to {float((out - expected).abs().max()):.2e}.", hint)


def _training_step_setup():
    """A tiny seeded classifier, its optimizer and a schedule whose factor changes every step,
    and three padded batches: the fixture of ``check_training_step``."""
    import torch
    from transformers import BertConfig, BertModel

    from bert_workbook.training import SentenceClassifier

    torch.manual_seed(HELD_OUT_SEED)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    model = SentenceClassifier(BertModel(config), 3, pooling="mean", dropout=0.2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    batches = []
    for _ in range(3):
        mask = torch.ones(4, 10, dtype=torch.long)
        mask[1, 6:] = mask[3, 3:] = 0
        batches.append({"input_ids": torch.randint(1, 64, (4, 10), generator=generator) * mask,
                        "attention_mask": mask, "token_type_ids": torch.zeros(4, 10, dtype=torch.long),
                        "labels": torch.randint(0, 3, (4,), generator=generator)})
    return model, optimizer, schedule, batches


def _run_training_steps(step, max_grad_norm: float = 0.05):
    """Parameters and returned losses after ``step`` ran on the fixture's three batches (dropout
    seeded per step); raises whatever ``step`` raises."""
    import warnings

    import torch

    model, optimizer, schedule, batches = _training_step_setup()
    losses = []
    with warnings.catch_warnings():  # a slip's own warnings (schedule before step, say)
        warnings.simplefilter("ignore")
        for i, batch in enumerate(batches):
            torch.manual_seed(i)
            loss = step(model, {k: v.clone() for k, v in batch.items()}, optimizer, schedule,
                        max_grad_norm=max_grad_norm)
            losses.append(loss.detach() if isinstance(loss, torch.Tensor) else loss)
    return [p.detach().clone() for p in model.parameters()], losses


def _training_step_mistakes():
    """Reference training steps with one classic slip each, keyed by what the slip is."""
    from torch import nn

    def make(zero=True, clip=True, schedule_step=True, step=True):
        def slip(model, batch, optimizer, schedule, max_grad_norm=1.0, loss_fn=None):
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            loss = nn.functional.cross_entropy(model(**inputs), batch["labels"])
            if zero:
                optimizer.zero_grad()
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            if step:
                optimizer.step()
            if schedule_step:
                schedule.step()
            return loss.item()
        return slip

    return {
        "the gradients were never set to zero, so each step adds the previous batches' gradients "
        "(call optimizer.zero_grad() before loss.backward())": make(zero=False),
        "the gradients are not clipped (torch.nn.utils.clip_grad_norm_(model.parameters(), "
        "max_grad_norm) between backward() and optimizer.step())": make(clip=False),
        "the learning-rate schedule never moves (call schedule.step() after optimizer.step())":
            make(schedule_step=False),
        "the weights never change: optimizer.step() is missing, or zero_grad() runs between "
        "backward() and step() and erases the gradients": make(step=False),
    }


def check_training_step(fn) -> CheckResult:
    """``fn(model, batch, optimizer, schedule, max_grad_norm=...)`` must make the reference's
    update: after three seeded steps on a tiny classifier every parameter must equal the
    reference's, and it must return each step's loss as a number."""
    import torch

    from bert_workbook.training import training_step

    exercise = "Exercise (training_step)"
    hint = ("forward (model(**inputs)), loss = cross_entropy(logits, labels), optimizer.zero_grad(), "
            "loss.backward(), clip_grad_norm_(model.parameters(), max_grad_norm), optimizer.step(), "
            "schedule.step(); return loss.item().")
    try:
        expected, expected_losses = _run_training_steps(training_step)
    except Exception as error:  # pragma: no cover - the reference itself failed
        return CheckResult(exercise, False, f"the reference could not run here: {error}")
    if not callable(fn):
        return CheckResult(exercise, False, f"expected a function, got {type(fn).__name__}.", hint)
    outcome, failed = _call_or_verdict(exercise, _run_training_steps, fn)
    if failed is not None:
        return failed
    params, losses = outcome
    same = all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(params, expected))
    if not same:
        for mistake, slip in _training_step_mistakes().items():
            slipped, _ = _run_training_steps(slip)
            if len(slipped) != len(params):
                break
            if all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(params, slipped)):
                return CheckResult(exercise, False, mistake + ".", hint)
        return CheckResult(exercise, False, "after three steps your parameters differ from the "
                           "reference's (largest difference "
                           f"{max(float((a - b).abs().max()) for a, b in zip(params, expected)):.2e}).", hint)
    try:
        numbers = [float(loss) for loss in losses]
    except (TypeError, ValueError, RuntimeError):
        numbers = None
    if numbers is None or not all(isinstance(loss, (int, float)) or getattr(loss, "ndim", 1) == 0
                                  for loss in losses):
        return CheckResult(exercise, False, f"the update is right, but return the loss as a number "
                           f"(loss.item()), not {type(losses[0]).__name__}.", hint)
    if not all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(numbers, expected_losses)):
        return CheckResult(exercise, False, "the update is right, but the returned numbers are not "
                           "the batch losses (return loss.item() of this step's loss).", hint)
    return CheckResult(exercise, True, "after three seeded steps every parameter equals the "
                       "reference's, and each step's loss came back as a number.")


def check_oversample(fn) -> CheckResult:
    """``fn(labels, seed)`` must return indices that keep every example once, add random
    duplicates (drawn within each class, seeded) until every class is as large as the largest,
    and give the same answer for the same seed."""
    import numpy as np

    exercise = "Exercise (oversample_minority)"
    hint = ("start from every index once (np.arange(len(labels))); for each class, draw "
            "(largest count - its count) extra indices of that class with replacement, from "
            "np.random.default_rng(seed); return them all concatenated.")
    rng = np.random.default_rng(HELD_OUT_SEED)
    labels = rng.permutation(np.repeat([0, 1, 2], [300, 12, 45]))
    out, failed = _call_or_verdict(exercise, fn, labels, 7)
    if failed is not None:
        return failed
    try:
        rows = np.asarray(out)
        assert rows.ndim == 1 and np.issubdtype(rows.dtype, np.integer)
    except (AssertionError, TypeError, ValueError):
        return CheckResult(exercise, False, f"expected a 1-d array of integer indices, got {type(out).__name__}"
                           f"{' of shape ' + str(getattr(out, 'shape', '')) if hasattr(out, 'shape') else ''}.", hint)
    if rows.min() < 0 or rows.max() >= len(labels):
        return CheckResult(exercise, False, "some indices point outside the dataset.", hint)
    lost = len(labels) - len(np.unique(rows))
    if lost:
        return CheckResult(exercise, False, f"{lost} of the {len(labels)} examples are missing from "
                           "your indices: oversampling must keep every original example (drawing the "
                           "whole minority class with replacement drops some of them).", hint)
    counts = np.bincount(labels[rows], minlength=3).tolist()
    if counts != [300, 300, 300]:
        return CheckResult(exercise, False, f"class counts after oversampling are {counts}; every class "
                           "should reach the largest count, 300.", hint)
    again, failed = _call_or_verdict(exercise, fn, labels, 7)
    if failed is not None or not np.array_equal(np.asarray(again), rows):
        return CheckResult(exercise, False, "the same seed gave different indices: draw from "
                           "np.random.default_rng(seed), not from global randomness.", hint)
    other, failed = _call_or_verdict(exercise, fn, labels, 8)
    if failed is not None or np.array_equal(np.sort(np.asarray(other)), np.sort(rows)):
        return CheckResult(exercise, False, "a different seed gave the same duplicates: the extra "
                           "examples should be drawn at random.", hint)
    if np.bincount(rows, minlength=len(labels))[labels == 1].max() > 60:
        return CheckResult(exercise, False, "a few minority examples are copied far more often than "
                           "the others: draw the duplicates uniformly within each class.", hint)
    return CheckResult(exercise, True, f"every example kept, classes balanced to {counts}, seeded.")


def _focal_cases():
    """Inputs for ``check_focal_loss``: random logits of both shapes, a few ignored targets."""
    import torch

    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    logits = torch.randn(12, 3, generator=generator) * 2
    target = torch.randint(3, (12,), generator=generator)
    tokens = torch.randn(3, 5, 4, generator=generator) * 2
    token_target = torch.randint(4, (3, 5), generator=generator)
    token_target[0, 0], token_target[1, 3], token_target[2, 4] = -100, -100, -100
    return logits, target, tokens, token_target


def check_focal_loss(fn) -> CheckResult:
    """``fn(logits, target, gamma, alpha, ignore_index, reduction)`` must equal the reference
    :class:`bert_workbook.losses.FocalLoss`: cross-entropy when gamma = 0, per-class alpha
    normalised as ``cross_entropy(weight=alpha)``, ignored targets counted nowhere, ``(N, C)``
    and ``(N, L, C)`` shapes, ``"sum"`` reduction, and gradients that flow."""
    import torch
    import torch.nn.functional as F

    from bert_workbook.losses import FocalLoss

    exercise = "Exercise (focal_loss)"
    hint = ("flatten to (-1, C); log_pt = log_softmax(logits).gather(target); loss = "
            "-(1 - p_t) ** gamma * log_pt, with 1 - p_t = -expm1(log_pt) (and a factor of 0 where that "
            "is exactly 0); weight each target by alpha[target] (1 without "
            "alpha) and by 0 where target == ignore_index; 'mean' divides the weighted sum by the "
            "summed weights, as cross_entropy(weight=...) does.")
    logits, target, tokens, token_target = _focal_cases()
    alpha = [0.2, 1.0, 3.0]
    token_alpha = [0.5, 1.0, 2.0, 4.0]

    def run(*args, **kwargs):
        try:
            out = fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as error:
            return None, f"raised {type(error).__name__}: {error}"
        if not (isinstance(out, torch.Tensor) and out.ndim == 0):
            return None, f"returned {type(out).__name__}{tuple(getattr(out, 'shape', ()))}, not a scalar tensor"
        return out, None

    cases = [
        ("gamma = 0 without alpha must equal F.cross_entropy", (logits, target),
         {"gamma": 0.0}, F.cross_entropy(logits, target)),
        ("gamma = 0 with alpha must equal F.cross_entropy(weight=alpha), which divides by the "
         "summed alpha of the targets, not by their number", (logits, target),
         {"gamma": 0.0, "alpha": alpha}, F.cross_entropy(logits, target, weight=torch.tensor(alpha))),
        ("gamma = 2 must match -(1 - p_t) ** 2 * log p_t", (logits, target), {"gamma": 2.0},
         FocalLoss(2.0)(logits, target)),
        ("gamma = 2 with per-class alpha", (logits, target), {"gamma": 2.0, "alpha": alpha},
         FocalLoss(2.0, alpha)(logits, target)),
        ("token logits (N, L, C) with targets (N, L), where -100 marks targets to skip",
         (tokens, token_target), {"gamma": 1.0, "alpha": token_alpha},
         FocalLoss(1.0, token_alpha)(tokens, token_target)),
        ("reduction='sum' adds the weighted losses", (tokens, token_target),
         {"gamma": 2.0, "reduction": "sum"}, FocalLoss(2.0, reduction="sum")(tokens, token_target)),
    ]
    for what, args, kwargs, expected in cases:
        try:
            out, problem = run(*args, **kwargs)
        except NotImplementedError:
            return CheckResult(exercise, False, "not implemented yet.", "replace the `raise NotImplementedError`.")
        if problem is None and not torch.allclose(out.detach().float(), expected, atol=1e-5, rtol=1e-4):
            problem = f"gave {float(out):.5f}, expected {float(expected):.5f}"
            if "-100" in what and torch.allclose(
                    out.detach().float(), FocalLoss(1.0, token_alpha, ignore_index=-1)(
                        tokens, token_target.clamp_min(0)), atol=1e-5, rtol=1e-4):
                problem += " (targets of -100 were counted)"
        if problem is not None:
            return CheckResult(exercise, False, f"{what}: your function {problem}.", hint)
    def gradient(logits_value, target_value, **kwargs):
        """(loss, gradient w.r.t. the logits, problem) of the learner's function; never raises."""
        leaf = logits_value.clone().requires_grad_(True)
        out, problem = run(leaf, target_value, **kwargs)
        if problem is not None:
            return None, None, problem
        if not out.requires_grad:
            return None, None, ("returned a loss with no gradient (computed outside autograd: "
                                ".item(), numpy, detach, or a new tensor?)")
        try:
            (grad,) = torch.autograd.grad(out, leaf, allow_unused=True)
        except RuntimeError as error:
            return None, None, f"its gradient could not be computed ({error})"
        if grad is None:
            return None, None, ("returned a loss that does not depend on the logits it was given "
                                "(a new tensor built from a number?)")
        return out.detach(), grad, None

    def reference_gradient(logits_value, target_value, gamma, alpha=None):
        leaf = logits_value.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(FocalLoss(gamma, alpha)(leaf, target_value), leaf)
        return grad

    gradient_cases = [
        ("random logits, gamma = 2, per-class alpha", logits, target, 2.0, alpha),
        ("random logits, gamma = 0.5", logits, target, 0.5, None),
        # confident examples: p_t rounds to 1 in float32, where naive formulas give inf or NaN
        ("large margins (logits like [30, 0, 0]), gamma = 0.5",
         torch.tensor([[30.0, 0.0, 0.0], [0.0, 25.0, 0.0], [2.0, 0.0, 1.0]]), torch.tensor([0, 1, 2]), 0.5, None),
        ("large margins, gamma = 2", torch.tensor([[30.0, 0.0, 0.0], [0.0, -40.0, 0.0]]),
         torch.tensor([0, 0]), 2.0, None),
        ("a very wrong example (logits [0, 60, 0], true class 0), gamma = 2",
         torch.tensor([[0.0, 60.0, 0.0]]), torch.tensor([0]), 2.0, None),
    ]
    for what, case_logits, case_target, gamma, case_alpha in gradient_cases:
        try:
            out, grad, problem = gradient(case_logits, case_target, gamma=gamma, alpha=case_alpha)
        except NotImplementedError:
            return CheckResult(exercise, False, "not implemented yet.", "replace the `raise NotImplementedError`.")
        if problem is not None:
            return CheckResult(exercise, False, f"gradient test ({what}): your function {problem}.", hint)
        if not (torch.isfinite(out).all() and torch.isfinite(grad).all()):
            return CheckResult(exercise, False, f"{what}: your loss or its gradient is inf or NaN. "
                               "Compute log p_t with log_softmax (log(softmax(x)) is log(0) = -inf "
                               "for a very wrong example), and 1 - p_t as -expm1(log_pt): 1 - exp(log_pt) "
                               "rounds to exactly 0 for a confident one, where 0 ** gamma has an infinite "
                               "slope when gamma < 1.", hint)
        expected_loss = FocalLoss(gamma, case_alpha)(case_logits, case_target)
        expected_grad = reference_gradient(case_logits, case_target, gamma, case_alpha)
        if not torch.allclose(out.float(), expected_loss, atol=1e-5, rtol=1e-4):
            return CheckResult(exercise, False, f"{what}: your function gave {float(out):.5g}, expected "
                               f"{float(expected_loss):.5g}.", hint)
        if not torch.allclose(grad.float(), expected_grad, atol=1e-5, rtol=1e-3):
            detached = torch.allclose(grad.float(), _focal_detached_gradient(case_logits, case_target, gamma,
                                                                             case_alpha), atol=1e-5, rtol=1e-3)
            reason = ("the modulating factor (1 - p_t) ** gamma was detached (or computed outside "
                      "autograd), so its own gradient is missing" if detached else
                      f"its largest difference from the reference's is {float((grad - expected_grad).abs().max()):.2e}")
            return CheckResult(exercise, False, f"{what}: the loss is right but its gradient is not: "
                               f"{reason}. The factor must stay in the graph: it is what turns easy "
                               "examples down during training.", hint)
    easy = torch.tensor([[4.0, 0.0, 0.0]])
    grads = [float(reference_gradient(easy, torch.tensor([0]), gamma).abs().sum()) for gamma in (0.0, 1.0, 2.0)]
    shrink = ", ".join(f"{g:.2g}" for g in grads)
    return CheckResult(exercise, True, f"equals cross-entropy at gamma = 0 (with and without alpha), "
                       f"the reference at gamma = 1 and 2, skips -100 targets, handles token shapes "
                       f"and 'sum'; its gradients equal the reference's, also at large margins and "
                       f"gamma = 0.5; an easy example's gradient at gamma 0, 1, 2: {shrink}.")


def _focal_detached_gradient(logits, target, gamma, alpha):
    """The gradient of a focal loss whose modulating factor is detached (a classic slip)."""
    import torch

    from bert_workbook.losses import focal_factor

    leaf = logits.clone().requires_grad_(True)
    log_pt = leaf.log_softmax(-1).gather(1, target[:, None]).squeeze(1)
    weight = torch.ones_like(log_pt) if alpha is None else torch.as_tensor(alpha)[target]
    loss = (-focal_factor(log_pt, gamma).detach() * log_pt * weight).sum() / weight.sum()
    (grad,) = torch.autograd.grad(loss, leaf)
    return grad


def _alignment_cases(tokenizer):
    """(name, word_labels, word_ids, label_all_subwords) cases for ``check_align_labels``."""
    from bert_workbook.data import CONLL_TAGS
    from bert_workbook.ner import sequence_word_ids

    tag = {name: i for i, name in enumerate(CONLL_TAGS)}

    def ids(tags):
        return [tag[t] for t in tags]

    def split(words):
        return tokenizer(words, is_split_into_words=True).word_ids()

    lecture = (["Mt.", "Sanitas", "is", "in", "Sunshine", "Canyon"],
               ids(["B-LOC", "I-LOC", "O", "O", "B-LOC", "I-LOC"]))
    long_words = (["Unbelievably", ",", "Grzegorz", "Brzęczyszczykiewicz", "joined", "U.S.", "Steel", "."],
                  ids(["O", "O", "B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O"]))
    repeated = (["Paris", "Hilton", "left", "Paris", "for", "Paris", "Texas"],
                ids(["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "I-LOC"]))
    truncated = tokenizer(long_words[0], is_split_into_words=True, truncation=True, max_length=9).word_ids()
    pair = sequence_word_ids(tokenizer("Where was Brzęczyszczykiewicz born ?", "Sunshine Canyon , Colorado"), 1)
    cases = []
    for every in (False, True):
        mode = "every subword labelled" if every else "first subword labelled"
        cases += [
            (f"the lecture example ({mode})", lecture[1], split(lecture[0]), every),
            (f"long words and punctuation ({mode})", long_words[1], split(long_words[0]), every),
            (f"repeated words ({mode})", repeated[1], split(repeated[0]), every),
            (f"a sentence truncated to 9 tokens ({mode})", long_words[1], truncated, every),
            (f"the second text of a pair ({mode})", ids(["B-LOC", "I-LOC", "O", "B-LOC"]), pair, every),
        ]
    return cases


def check_align_labels(fn) -> CheckResult:
    """``fn(word_labels, word_ids, label_all_subwords=..., b_to_i=...)`` must equal
    :func:`bert_workbook.ner.align_labels_to_tokens` on multi-piece words, punctuation, repeated
    words, truncation and the second text of a pair, in both modes; it names the position-aligned
    bug, a forgotten B-to-I rule, labelled special tokens and labelled continuation pieces."""
    from bert_workbook.assets import load_tokenizer
    from bert_workbook.data import CONLL_TAGS
    from bert_workbook.ner import IGNORE_INDEX, align_labels_to_tokens, b_to_i_ids

    exercise = "Exercise (align_labels_to_tokens)"
    hint = ("walk over word_ids: None -> -100; a word id different from the previous token's -> "
            "that word's label; the same word id again -> -100, or (label_all_subwords) the "
            "word's label with b_to_i applied, so B-X becomes I-X.")
    b_to_i = b_to_i_ids(CONLL_TAGS)
    for what, labels, word_ids, every in _alignment_cases(load_tokenizer("embedded")):
        expected = align_labels_to_tokens(labels, word_ids, label_all_subwords=every, b_to_i=b_to_i)
        got, failed = _call_or_verdict(exercise, functools.partial(
            fn, list(labels), list(word_ids), label_all_subwords=every, b_to_i=b_to_i))
        if failed is not None:
            return failed
        try:
            got = [int(x) for x in got]
        except (TypeError, ValueError):
            return CheckResult(exercise, False, f"{what}: expected a list of ints, got {type(got).__name__}.", hint)
        if got == expected:
            continue
        labelled = [w is not None for w in word_ids]
        mistakes = {
            "labels were matched to tokens by position; tokens and words do not line up once a "
            "word splits into several pieces, so use word_ids":
                [labels[i] if i < len(labels) else IGNORE_INDEX for i in range(len(word_ids))],
            "the B- to I- rule is missing: a continuation piece of a B-X word must get I-X, since "
            "only the first piece begins the entity":
                align_labels_to_tokens(labels, word_ids, label_all_subwords=True, b_to_i={}),
            "special tokens ([CLS], [SEP], the other text of a pair) need -100":
                [e if lab else 0 for e, lab in zip(expected, labelled)],
            "continuation pieces got a label in first-subword mode; they need -100":
                align_labels_to_tokens(labels, word_ids, label_all_subwords=True, b_to_i=b_to_i),
        }
        shifted = [IGNORE_INDEX] + [labels[i] if i < len(labels) else IGNORE_INDEX for i in range(len(word_ids) - 1)]
        mistakes["labels were matched by position after [CLS]; use word_ids instead"] = shifted
        for mistake, wrong in mistakes.items():
            if got == wrong:
                return CheckResult(exercise, False, f"{what}: {mistake}.", hint)
        return CheckResult(exercise, False, f"{what}: word_ids {list(word_ids)}, labels {list(labels)}: "
                           f"got {got}, expected {expected}.", hint)
    return CheckResult(exercise, True, "matches the reference on 10 cases: long words, punctuation, repeated "
                       "words, truncation and a sentence pair, with first-subword and every-subword labels.")


def _albert_embedding_count(vocab_size: int, embedding_size: int, hidden_size: int) -> int:
    """The token-embedding parameters of a real ALBERT built with these sizes: its word
    embeddings plus the projection up to the hidden size (counted on the meta device)."""
    from transformers import AlbertConfig

    from bert_workbook.family import build_model

    config = AlbertConfig(vocab_size=vocab_size, embedding_size=embedding_size,
                          hidden_size=hidden_size, num_attention_heads=1, num_hidden_layers=1,
                          intermediate_size=hidden_size)
    model = build_model(config)
    return (model.embeddings.word_embeddings.weight.numel()
            + sum(p.numel() for p in model.encoder.embedding_hidden_mapping_in.parameters()))


def check_factorized_embeddings(fn) -> CheckResult:
    """``fn(vocab_size, embedding_size, hidden_size)`` must give the number of parameters of
    ALBERT's factorized token embeddings, counted on real ALBERT models of several sizes; it
    names the usual slips (no factorization, no projection, no bias, the projection's shape)."""
    exercise = "Exercise (factorized_embedding_parameters)"
    hint = ("a vocab_size x embedding_size table, then nn.Linear(embedding_size, hidden_size): "
            "its weight matrix and its bias.")
    for vocab_size, embedding_size, hidden_size in [(30000, 128, 768), (1000, 16, 64), (50, 8, 8),
                                                    (32000, 256, 4096), (7, 3, 5)]:
        expected = _albert_embedding_count(vocab_size, embedding_size, hidden_size)
        got, failed = _call_or_verdict(exercise, fn, vocab_size, embedding_size, hidden_size)
        if failed is not None:
            return failed
        if isinstance(got, bool) or not isinstance(got, int | float) or got != int(got):
            return CheckResult(exercise, False, f"expected a whole number, got {got!r}.", hint)
        if int(got) == expected:
            continue
        v, e, h = vocab_size, embedding_size, hidden_size
        mistakes = {
            "that is BERT's unfactorized table (vocab_size x hidden_size)": v * h,
            "the projection from embedding_size to hidden_size is missing": v * e,
            "the projection's bias (hidden_size numbers) is missing": v * e + e * h,
            "the projection has hidden_size x hidden_size weights; it maps embedding_size to "
            "hidden_size": v * e + h * h + h,
        }
        why = next((text for text, value in mistakes.items() if value == got), None)
        case = f"vocab_size={v}, embedding_size={e}, hidden_size={h}"
        return CheckResult(exercise, False, f"{case}: expected {expected:,}, got {int(got):,}"
                           + (f": {why}." if why else "."), hint)
    return CheckResult(exercise, True, "matches the parameter count of real ALBERT embeddings at "
                       "five sizes, from 30,000 x 128 -> 768 down to 7 x 3 -> 5.")
