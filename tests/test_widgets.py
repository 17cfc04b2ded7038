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


def test_mask_explorer_reacts_to_probability_and_seed(tokenizer):
    explorer = widgets.mask_explorer(tokenizer, "The cat sat on the mat because it was warm.", 0.0)
    sentence, controls, view = explorer.children
    probability, seed = controls.children
    assert "#fca5a5;padding:2px" not in view.value  # nothing selected at probability 0
    probability.value = 1.0
    assert view.value.count("title=\"not selected\"") == 2  # only [CLS] and [SEP]
    before = view.value
    probability.value = 0.5
    seed.value = 1
    assert view.value != before
    sentence.value = ""
    assert "Cannot mask" in view.value
