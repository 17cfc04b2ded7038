import pytest

from bert_workbook.timing import items_per_second


def test_items_per_second_counts_items():
    rate = items_per_second(lambda xs: sum(xs), list(range(1000)), repeats=2)
    assert rate > 0


@pytest.mark.parametrize("items, repeats", [([], 1), ([1], 0)])
def test_items_per_second_rejects_bad_input(items, repeats):
    with pytest.raises(ValueError):
        items_per_second(len, items, repeats=repeats)
