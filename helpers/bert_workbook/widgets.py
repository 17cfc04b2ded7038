"""Interactive explorers (ipywidgets) with a printed fallback for places that have no widgets."""

from __future__ import annotations

import html

import ipywidgets as widgets

from bert_workbook.masking import mask_tokens, masked_rows
from bert_workbook.wordpiece import format_token_rows, token_rows

EXPLORER_COLUMNS = ("position", "token", "id", "segment", "word_id", "text")
_SEGMENT_COLORS = ("#dbeafe", "#fde68a")
_SPECIAL_COLOR = "#e5e7eb"


class Explorer(widgets.VBox):
    """A VBox whose plain-text form is one short line (what shows where widgets cannot)."""

    def __repr__(self) -> str:
        return "<interactive explorer: shown in JupyterLab, Colab or VS Code>"


def token_rows_html(rows: list[dict]) -> str:
    """Token rows as colored HTML chips: segment A blue, segment B yellow, special tokens grey."""
    chips = []
    for row in rows:
        color = _SPECIAL_COLOR if row["word_id"] is None else _SEGMENT_COLORS[row["segment"] % 2]
        title = f"id {row['id']}, word {row['word_id']}, chars {row['start']}-{row['end']}"
        chips.append(
            f'<span title="{html.escape(title)}" style="background:{color};padding:2px 5px;'
            f'margin:2px;border-radius:4px;display:inline-block;font-family:monospace">'
            f"{html.escape(row['token'])}<sub>{row['id']}</sub></span>"
        )
    return "<div>" + "".join(chips) + "</div>"


def token_explorer(tokenizer, text: str, text_pair: str = ""):
    """A widget: type a sentence (and optionally a second one), see tokens, ids and word ids.

    Without a widget frontend (plain Python, nbval, some viewers) nothing interactive can show,
    so notebooks print ``format_token_rows(token_rows(...))`` for the first text beside it.
    """
    first = widgets.Text(value=text, description="Sentence A", layout={"width": "90%"})
    second = widgets.Text(value=text_pair, description="Sentence B", layout={"width": "90%"})
    chips = widgets.HTML()
    table = widgets.HTML()

    def update(_change=None) -> None:
        try:
            rows = token_rows(tokenizer, first.value, second.value or None)
        except Exception as error:  # show the problem in the widget rather than losing it
            chips.value = f"<b>Cannot tokenize:</b> {html.escape(str(error))}"
            table.value = ""
            return
        chips.value = token_rows_html(rows)
        table.value = "<pre>" + html.escape(format_token_rows(rows, EXPLORER_COLUMNS)) + "</pre>"

    first.observe(update, names="value")
    second.observe(update, names="value")
    update()
    return Explorer([first, second, chips, table])


MASK_COLORS = {"not selected": "#f3f4f6", "[MASK]": "#fca5a5", "random": "#fcd34d", "kept": "#86efac"}


def masked_rows_html(rows: list[dict]) -> str:
    """Masked tokens as chips: grey unselected, red [MASK], yellow random (with the original),
    green selected-but-kept; a legend first."""
    legend = " ".join(
        f'<span style="background:{c};padding:1px 4px;border-radius:3px">{html.escape(s)}</span>'
        for s, c in MASK_COLORS.items()
    )
    chips = []
    for row in rows:
        shown = html.escape(row["model sees"])
        if row["status"] == "random":
            shown += f' <s style="color:#6b7280">{html.escape(row["token"])}</s>'
        chips.append(
            f'<span title="{html.escape(row["status"])}" style="background:'
            f'{MASK_COLORS[row["status"]]};padding:2px 5px;margin:2px;border-radius:4px;'
            f'display:inline-block;font-family:monospace">{shown}</span>'
        )
    return f"<div>{legend}</div><div>{''.join(chips)}</div>"


def mask_explorer(tokenizer, text: str, mlm_probability: float = 0.15, seed: int = 0,
                  mask_fn=None):
    """A widget: a sentence, a masking-probability slider and a seed; shows what BERT sees.

    ``mask_fn`` defaults to :func:`bert_workbook.masking.mask_tokens` (pass your own to see it).
    """
    mask_fn = mask_fn or mask_tokens
    sentence = widgets.Text(value=text, description="Sentence", layout={"width": "90%"})
    probability = widgets.FloatSlider(value=mlm_probability, min=0.0, max=1.0, step=0.05,
                                      description="mask prob.")
    seed_box = widgets.IntText(value=seed, description="seed")
    view = widgets.HTML()

    def update(_change=None) -> None:
        try:
            rows = masked_rows(tokenizer, sentence.value, probability.value, seed_box.value, mask_fn)
        except Exception as error:  # show the problem in the widget rather than losing it
            view.value = f"<b>Cannot mask:</b> {html.escape(str(error))}"
            return
        view.value = masked_rows_html(rows)

    for control in (sentence, probability, seed_box):
        control.observe(update, names="value")
    update()
    return Explorer([sentence, widgets.HBox([probability, seed_box]), view])


ENTITY_COLORS = {"PER": "#fbd3d3", "ORG": "#d3e4fb", "LOC": "#d5f2d5", "MISC": "#f3e3c3"}


def entities_html(text: str, spans) -> str:
    """``text`` with each ``(type, start, end)`` character span highlighted and labelled."""
    parts, position = [], 0
    for kind, start, end in sorted(spans, key=lambda span: span[1]):
        if start < position or end > len(text) or start >= end:
            raise ValueError(f"span {(kind, start, end)} overlaps another or lies outside the text")
        parts.append(html.escape(text[position:start]))
        color = ENTITY_COLORS.get(kind, "#e0e0e0")
        parts.append(f'<mark style="background:{color};padding:1px 4px;border-radius:4px">'
                     f'{html.escape(text[start:end])} <b style="font-size:70%">{html.escape(kind)}</b></mark>')
        position = end
    parts.append(html.escape(text[position:]))
    return '<div style="line-height:2">' + "".join(parts) + "</div>"
