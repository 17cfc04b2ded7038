"""The course's one statistical standard: how a difference between two methods is estimated, how
wide its interval is, and when it may be read as a verdict.

One entry point, :func:`compare`, takes paired per-run scores (the same data draw or seed for both
methods, in the same order) and returns a :class:`Comparison`: the mean difference, a 95%
interval, the number of runs, and the variance sources the interval includes.

* **Runs** (seeds, data draws, pretraining runs): a Student-t interval over the paired per-run
  differences. Its coverage is exact for normal differences at any run count and close to it for
  moderately skewed ones (``tests/test_stats.py`` simulates n = 3, 5, 10 and 20). The percentile
  bootstrap the course used before covers 75% at n = 3 and 84% at n = 5: at n = 3 it is the
  smallest and largest run.
* **The evaluation set** (``evaluation_variance=``): every run is scored on the same finite set,
  so the runs share its luck. :func:`evaluation_set_variance` estimates that shared error by a
  paired bootstrap over the evaluation examples (or over groups of them: sentences, windows),
  and :func:`compare` adds it to the runs' variance, with Welch-Satterthwaite degrees of freedom.
* **Examples alone** (one model, many examples: positions, sentences, minimal pairs):
  :func:`compare_examples`, a cluster (block) bootstrap when the examples come in groups.

A verdict word ("better", "worse", "no difference as large as 0.01") comes from
:meth:`Comparison.verdict` only when the interval includes every variance source the claim is
about, each with at least :data:`MIN_RUNS` runs; otherwise it says it is not a verdict and why,
and the caller shows the spread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

MIN_RUNS = 5
LEVEL = 0.95


@dataclass(frozen=True)
class Comparison:
    """A mean difference with its ``level`` interval ``[low, high]``.

    ``runs``: how many paired runs of each source in ``sources`` the interval is over (for an
    example-level comparison, the number of examples or groups). ``sources``: the variance sources
    the interval includes, e.g. ``("data draw", "evaluation set")``. ``method``: how it was made.
    """

    estimate: float
    low: float
    high: float
    runs: int
    sources: tuple[str, ...]
    method: str
    level: float = LEVEL

    @property
    def mean(self) -> float:
        return self.estimate

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        if not np.isfinite(self.low):
            return f"{self.estimate:+.3f} (one run: no interval)"
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"

    def verdict(self, about: Sequence[str] | None = None, *, matters: float = 0.01,
                higher_is_better: bool | None = True) -> str:
        """The verdict in words, or why there is none.

        ``about``: the variance sources the claim is about (default: this comparison's own). A
        verdict needs every one of them in the interval, with at least :data:`MIN_RUNS` runs.
        """
        about = tuple(self.sources if about is None else about)
        missing = [source for source in about if source not in self.sources]
        if missing:
            return f"not a verdict: the interval leaves out {', '.join(missing)}"
        if self.runs < MIN_RUNS:
            return f"not a verdict: {self.runs} run{'s' if self.runs != 1 else ''} (a verdict needs {MIN_RUNS}); read the spread"
        return describe(self.low, self.high, matters=matters, higher_is_better=higher_is_better)


def describe(low: float, high: float, *, matters: float = 0.01, higher_is_better: bool | None = True) -> str:
    """Words for an interval ``[low, high]`` of a difference: "better"/"worse" ("higher"/"lower"
    with ``higher_is_better=None``) when it lies on one side of 0, "by less than ``matters``" when
    it cannot reach that size; "no difference as large as ``matters``" when it rules that size out
    on both sides; otherwise "no detectable difference". Use it through :meth:`Comparison.verdict`,
    which first checks that the interval can carry a verdict."""
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"need a finite interval with low <= high, got [{low}, {high}]")
    if not matters > 0:
        raise ValueError(f"matters must be positive, got {matters}")
    up, down = {True: ("better", "worse"), False: ("worse", "better"), None: ("higher", "lower")}[higher_is_better]
    if low > 0:
        return up + (f", by less than {matters:g}" if high < matters else "")
    if high < 0:
        return down + (f", by less than {matters:g}" if low > -matters else "")
    if -matters < low and high < matters:
        return f"no difference as large as {matters:g}"
    return "no detectable difference"


def _as_values(values, name: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}") from error
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"{name} must be a non-empty 1-d sequence of numbers, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def t_interval(values, *, level: float = LEVEL, extra_variance: float = 0.0,
               extra_df: float = np.inf) -> tuple[float, float, float]:
    """The mean of ``values`` and its Student-t ``level`` interval; ``extra_variance`` (the
    variance of an error all values share, estimated with ``extra_df`` degrees of freedom) is
    added to the mean's variance, with Welch-Satterthwaite degrees of freedom."""
    v = _as_values(values, "values")
    _check_level(level)
    if extra_variance < 0 or not np.isfinite(extra_variance):
        raise ValueError(f"extra_variance must be finite and >= 0, got {extra_variance}")
    mean = float(v.mean())
    if len(v) == 1 and extra_variance == 0:
        return mean, float("nan"), float("nan")
    runs_variance = v.var(ddof=1) / len(v) if len(v) > 1 else 0.0
    total = runs_variance + extra_variance
    if total == 0:
        return mean, mean, mean
    terms = ([runs_variance ** 2 / (len(v) - 1)] if len(v) > 1 else []) + \
            ([extra_variance ** 2 / extra_df] if extra_variance > 0 else [])
    df = total ** 2 / sum(terms) if sum(terms) > 0 else np.inf
    half = float(_scipy_stats.t.ppf((1 + level) / 2, df)) * np.sqrt(total)
    return mean, mean - half, mean + half


def compare(scores, baseline, *, sources: Sequence[str] = ("seed",), evaluation_variance: float | None = None,
            evaluation_groups: int | None = None, level: float = LEVEL) -> Comparison:
    """``scores - baseline`` run by run (the same draw or seed for both, in the same order): the
    mean difference and its t-interval over runs. ``sources`` names what varied from run to run.

    With ``evaluation_variance`` (from :func:`evaluation_set_variance`), the interval also covers
    which evaluation examples happened to be drawn: "evaluation set" joins the sources, and
    ``evaluation_groups`` (the number of examples or groups the bootstrap resampled) gives that
    variance's degrees of freedom.
    """
    a, b = _as_values(scores, "scores"), _as_values(baseline, "baseline")
    if a.shape != b.shape:
        raise ValueError(f"scores and baseline must be paired run by run; got {len(a)} and {len(b)} runs")
    if isinstance(sources, str) or not sources:
        raise TypeError(f"sources must be a non-empty sequence of names, e.g. ('seed',); got {sources!r}")
    sources = tuple(sources)
    method = "t over runs"
    extra, extra_df = 0.0, np.inf
    if evaluation_variance is not None:
        extra = float(evaluation_variance)
        extra_df = (evaluation_groups - 1) if evaluation_groups else np.inf
        sources += ("evaluation set",)
        method += " + evaluation-set bootstrap"
    mean, low, high = t_interval(a - b, level=level, extra_variance=extra, extra_df=extra_df)
    return Comparison(mean, low, high, len(a), sources, method, level)


def _groups_of(n: int, groups) -> tuple[np.ndarray, int]:
    """Group index per example (0..G-1) and G; each example its own group by default."""
    if groups is None:
        return np.arange(n), n
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must give one group per example ({n}), got shape {g.shape}")
    _, index = np.unique(g, return_inverse=True)
    return index, int(index.max()) + 1


def resample_weights(n: int, *, groups=None, resamples: int, seed: int = 0, block: int = 1000):
    """The course's one bootstrap: blocks of at most ``block`` rows, each row how often each of
    the ``n`` examples is drawn when the examples (or whole ``groups`` of them: windows,
    sentences) are resampled with replacement. A statistic of weighted examples then gives one
    value per resample."""
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples}")
    index, count = _groups_of(n, groups)
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, block):
        picks = rng.integers(0, count, size=(min(block, resamples - start), count))
        offsets = np.arange(len(picks))[:, None] * count
        counts = np.bincount((picks + offsets).ravel(), minlength=len(picks) * count).reshape(len(picks), count)
        yield counts[:, index].astype(np.float64)


def bootstrap_interval(statistic: Callable, n: int, *, groups=None, level: float = LEVEL,
                       resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """The percentile ``level`` interval of ``statistic(weights)`` (weights: (resamples, n), see
    :func:`resample_weights`; it returns one value per row) over a bootstrap of the examples.
    Right when there are many examples or groups (hundreds), not for a handful of runs: use
    :func:`compare` there."""
    _check_level(level)
    values = np.concatenate([np.asarray(statistic(w), dtype=np.float64)
                             for w in resample_weights(n, groups=groups, resamples=resamples, seed=seed)])
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def evaluation_set_variance(metric: Callable, labels, outputs, baseline_outputs, *, groups=None,
                            resamples: int = 200, seed: int = 0) -> float:
    """How much ``mean over runs of metric(outputs) - metric(baseline_outputs)`` would move with
    another evaluation set of the same size: its variance over a paired bootstrap of the
    evaluation examples (whole groups at a time with ``groups``; every run and both methods
    scored on the same resamples).

    ``metric(labels, output, weights)``: ``weights`` is (resamples, examples), how often each
    example was drawn; it returns one value per resample (``weighted_mean``, or
    ``measure.weighted_auc`` and ``measure.weighted_argmax_f1``). ``outputs`` and
    ``baseline_outputs``: one array per run, each with one row per example.
    """
    y = np.asarray(labels)
    if len(outputs) != len(baseline_outputs) or len(outputs) == 0:
        raise ValueError(f"need the same non-zero number of runs; got {len(outputs)} and {len(baseline_outputs)}")
    for output in (*outputs, *baseline_outputs):
        if len(output) != len(y):
            raise ValueError(f"every output needs one row per example ({len(y)}), got {len(output)}")
    differences = np.concatenate([
        np.mean([np.asarray(metric(y, np.asarray(a), w)) - np.asarray(metric(y, np.asarray(b), w))
                 for a, b in zip(outputs, baseline_outputs)], axis=0)
        for w in resample_weights(len(y), groups=groups, resamples=resamples, seed=seed)])
    return float(np.var(differences, ddof=1))


def weighted_mean(labels, values, weights) -> np.ndarray:
    """The mean of per-example ``values`` under each row of bootstrap ``weights`` (a metric for
    :func:`evaluation_set_variance` when the score is an average over examples: accuracy, loss)."""
    return weights @ np.asarray(values, dtype=np.float64) / weights.sum(1)


def compare_examples(values, *, groups=None, source: str = "evaluation examples", level: float = LEVEL,
                     resamples: int = 10_000, seed: int = 0) -> Comparison:
    """The mean of per-example values (a paired difference per example: one model against
    another on the same examples) with a bootstrap interval over the examples, or over whole
    ``groups`` of them (windows, sentences) when examples in a group are not independent: a
    cluster bootstrap. For a claim about this model on such examples; a claim about a training
    recipe also needs its runs (:func:`compare`)."""
    v = _as_values(values, "values")
    _check_level(level)
    _, count = _groups_of(len(v), groups)
    if count < 2:
        return Comparison(float(v.mean()), float("nan"), float("nan"), count, (source,), "one group", level)
    low, high = bootstrap_interval(lambda w: weighted_mean(None, v, w), len(v), groups=groups, level=level,
                                   resamples=resamples, seed=seed)
    method = "cluster bootstrap" if groups is not None else "bootstrap over examples"
    return Comparison(float(v.mean()), low, high, count, (source,), method, level)


def compare_table(table, *, method: str, value: str, run: str, baseline: str, sources: Sequence[str],
                  about: Sequence[str] | None = None, evaluation_metric: Callable | None = None,
                  labels=None, outputs: dict | None = None, level: float = LEVEL):
    """One row per method of a long ``table`` (columns ``method``, ``run``, ``value``): the mean
    ``value`` over runs, its spread (std), and :func:`compare`'s paired difference from
    ``baseline`` (columns ``vs <baseline>``, ``low``, ``high``, ``verdict``).

    With ``evaluation_metric`` (``value`` under bootstrap weights, see
    :func:`evaluation_set_variance`), ``labels`` and ``outputs`` (method -> one output per run, in
    the table's run order), each difference's interval also covers the evaluation set; a method
    without outputs gets none. ``about``: the variance sources the claim is about
    (:meth:`Comparison.verdict`)."""
    import pandas as pd

    for column in (method, value, run):
        if column not in table.columns:
            raise ValueError(f"table has no column {column!r} (it has {list(table.columns)})")
    wide = table.pivot(index=run, columns=method, values=value)
    if baseline not in wide.columns:
        raise ValueError(f"baseline {baseline!r} is not among the methods {list(wide.columns)}")
    if wide.isna().any().any():
        raise ValueError("every method needs a score for every run (paired comparison)")
    outputs = outputs or {}
    rows = []
    for name in dict.fromkeys(table[method]):
        row = {method: name, "mean": wide[name].mean(), "std": wide[name].std(ddof=1)}
        if name != baseline:
            variance = None
            if evaluation_metric is not None and name in outputs and baseline in outputs:
                variance = evaluation_set_variance(evaluation_metric, labels, outputs[name], outputs[baseline])
            diff = compare(wide[name], wide[baseline], sources=sources, evaluation_variance=variance,
                           evaluation_groups=None if variance is None else len(labels), level=level)
            row.update({"vs " + baseline: diff.estimate, "low": diff.low, "high": diff.high,
                        "verdict": diff.verdict(about)})
        rows.append(row)
    return pd.DataFrame(rows).set_index(method)
