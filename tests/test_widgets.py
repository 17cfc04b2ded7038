from bert_workbook import widgets
from bert_workbook.wordpiece import token_rows


def test_explorer_updates_when_the_text_changes(tokenizer):
    explorer = widgets.token_explorer(tokenizer, "The cat")
    first, second, chips, table = explorer.children
    assert "cat" in table.value and "[CLS]" in chips.value
    first.value = "Unaffable dogs"
    assert "##ffa" in table.value and "cat" not in table.value
    second.value = "Second sentence"
    assert "second" in table.value


def test_explorer_has_a_short_text_form(tokenizer):
    assert repr(widgets.token_explorer(tokenizer, "x")).startswith("<interactive explorer")


def test_chips_escape_html(tokenizer):
    html = widgets.token_rows_html(token_rows(tokenizer, "<b>"))
    assert "<b>" not in html.replace("<div>", "") and "&lt;" in html
