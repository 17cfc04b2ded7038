import pytest

from bert_workbook.timing import items_per_second


def test_items_per_second_divides_the_items_by_the_fastest_run(monkeypatch):
    from bert_workbook import timing

    asked = []

    def fastest(fn, repeats):  # a clock that always reads a quarter of a second
        asked.append(repeats)
        fn()
        return 0.25

    monkeypatch.setattr(timing, "fastest_seconds", fastest)
    seen = []
    assert timing.items_per_second(seen.append, list(range(1000)), repeats=4) == 4000.0
    assert asked == [4] and seen == [list(range(1000))]  # all the items, in one call


def test_items_per_second_on_the_real_clock_is_bounded_by_the_work():
    import time

    rate = items_per_second(lambda xs: time.sleep(0.02), list(range(100)), repeats=2)
    assert 100 / 1.0 < rate <= 100 / 0.02  # a sleep never ends early; 1 s allows a busy machine


@pytest.mark.parametrize("items, repeats", [([], 1), ([1], 0)])
def test_items_per_second_rejects_bad_input(items, repeats):
    with pytest.raises(ValueError):
        items_per_second(len, items, repeats=repeats)


def test_fastest_seconds_calls_warmup_plus_repeats_and_keeps_the_fastest():
    import time

    from bert_workbook.timing import fastest_seconds

    pauses = iter([0.0, 0.03, 0.0, 0.01, 0.02])  # the first is the warm-up: never timed
    calls = []

    def pause():
        calls.append(1)
        time.sleep(next(pauses))

    seconds = fastest_seconds(pause, 4, warmup=1)
    assert len(calls) == 5  # no hidden runs
    assert 0.0 <= seconds < 0.01


@pytest.mark.parametrize("arguments", [{"repeats": 0}, {"repeats": 1.5}, {"repeats": True},
                                       {"repeats": 2, "warmup": -1}, {"repeats": 2, "warmup": "1"}])
def test_fastest_seconds_rejects_bad_counts(arguments):
    from bert_workbook.timing import fastest_seconds

    with pytest.raises(ValueError):
        fastest_seconds(lambda: None, **arguments)
