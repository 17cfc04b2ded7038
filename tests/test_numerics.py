"""numerics: agreement printed as a bound that reads the same on any machine."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bert_workbook.numerics import agreement, difference_bound


def test_a_difference_under_the_bound_reads_the_same_whatever_its_digits():
    assert {agreement(d, 1e-5, 1e-6) for d in (1.2e-07, 3.0e-07, 9.9e-07, 0.0)} == {
        "equal within 1e-05: yes, largest difference below 1e-06"}
    assert agreement(7.2e-07, 1e-5) == agreement(2.0e-06, 1e-5) == "equal within 1e-05: yes"


def test_over_the_bound_the_figure_shows_and_over_the_tolerance_it_says_no():
    assert agreement(2.0e-06, 1e-5, 1e-6) == "equal within 1e-05: yes, largest difference 2.0e-06"
    assert agreement(3.2e-4, 1e-5) == "equal within 1e-05: NO, largest difference 3.2e-04"
    assert difference_bound(1e-6, 1e-6) == "largest difference 1.0e-06"  # strictly below


def test_tensors_and_arrays_are_numbers_too():
    assert agreement(torch.tensor(1e-7), 1e-5, 1e-6) == agreement(np.float32(1e-7), 1e-5, 1e-6)


@pytest.mark.parametrize("args, error", [(("x", 1e-5), TypeError), ((float("nan"), 1e-5), ValueError),
                                         ((-1.0, 1e-5), ValueError), ((0.0, 1e-5, 1e-4), ValueError),
                                         ((0.0, 1e-5, 0.0), ValueError)])
def test_bad_input_is_refused_with_a_clear_error(args, error):
    with pytest.raises(error):
        agreement(*args)


@given(st.floats(0, 1e-6, exclude_max=True), st.floats(0, 1e-6, exclude_max=True))
def test_any_two_differences_under_the_bound_print_alike(a, b):
    assert agreement(a, 1e-5, 1e-6) == agreement(b, 1e-5, 1e-6)


def test_the_bound_alone_for_a_table_column():
    from bert_workbook.numerics import bound

    assert bound(9.9e-07, 1e-5) == "below 1e-05" and bound(5.4e-04, 1e-5) == "5.4e-04"
