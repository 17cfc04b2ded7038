"""Interactive explorers (ipywidgets) with a printed fallback for places that have no widgets."""

from __future__ import annotations

import html

import ipywidgets as widgets

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
