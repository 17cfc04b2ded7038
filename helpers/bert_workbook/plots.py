"""Plots that more than one notebook draws."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def seed_scores(ax, table, *, group: str, value: str, order: Sequence[str] | None = None,
                lines: dict[str, float] | None = None):
    """One column per ``group`` in a DataFrame ``table``: a dot per row (per seed) of ``value``
    and a red bar at their mean; ``lines`` maps a label to a grey reference line. Returns ``ax``."""
    order = list(order) if order is not None else list(dict.fromkeys(table[group]))
    missing = [name for name in order if name not in set(table[group])]
    if missing:
        raise ValueError(f"no rows for {missing} in column {group!r}")
    for i, name in enumerate(order):
        scores = table.loc[table[group] == name, value].to_numpy()
        ax.scatter(np.full(len(scores), i), scores, color="C0", zorder=3)
        ax.scatter(i, scores.mean(), marker="_", s=600, color="C3", zorder=4)
    for (label, y), style in zip((lines or {}).items(), ("--", ":", "-.")):
        ax.axhline(y, ls=style, color="grey", label=label)
    ax.set_xticks(range(len(order)), order)
    if lines:
        ax.legend(fontsize=8, loc="upper left")
    return ax
