"""bench/common.py's side-by-side harness, on fake clocks and timings: the rotation and the ratio arithmetic."""

import pytest

from tests.factories import import_bench


def test_round_orders_rotate_so_each_contender_holds_every_position_equally_often():
    common = import_bench("common")
    assert common.round_orders(["ours", "dcp"], 4) == [["ours", "dcp"], ["dcp", "ours"]] * 2
    orders = common.round_orders(["a", "b", "c"], 6)
    assert orders[:3] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]] and orders[3:] == orders[:3]
    for position in range(3):
        assert sorted(order[position] for order in orders) == ["a", "a", "b", "b", "c", "c"]


class FakeClock:
    """A clock that each contender advances by its own fixed cost, so every timing is known in advance."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_alternate_warms_up_once_untimed_then_runs_in_the_rotated_order_and_times_each_call():
    common = import_bench("common")
    clock, calls = FakeClock(), []

    def contender(name, cost, extra=None):
        def run():
            calls.append(name)
            clock.now += cost
            return extra
        return run

    out = common.alternate({"a": contender("a", 2.0), "b": contender("b", 0.5, {"blocked": 0.1})}, 3, clock=clock)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rounds a-b, b-a, a-b
    assert out == {"a": {"seconds": [2.0, 2.0, 2.0]}, "b": {"seconds": [0.5, 0.5, 0.5], "blocked": [0.1, 0.1, 0.1]}}
    calls.clear()
    common.alternate({"a": contender("a", 1.0)}, 2, warmup=False, clock=clock)
    assert calls == ["a", "a"]


def test_ratio_pairs_the_rounds_and_reports_min_median_max_beside_the_ratio_of_medians():
    common = import_bench("common")
    r = common.ratio([1.0, 3.0, 2.0, 8.0], [2.0, 2.0, 4.0, 4.0])
    assert r.per_round == (0.5, 1.5, 0.5, 2.0)
    assert r.of_medians == pytest.approx(2.5 / 3.0)
    assert (r.low, r.median, r.high) == (0.5, 1.0, 2.0)
    assert r.spread == 1.0
    assert r.describe() == "0.83 (rounds 0.50 / 1.00 / 2.00)"
    with pytest.raises(ValueError, match="same number of rounds"):
        common.ratio([1.0], [1.0, 2.0])


def test_a_claim_inside_the_controls_spread_is_within_noise():
    common = import_bench("common")
    control = common.ratio([1.0, 1.02, 0.99], [1.0, 1.0, 1.0])  # strays 2% from 1 at most
    assert common.within_noise(common.ratio([0.985], [1.0]), control)
    assert not common.within_noise(common.ratio([0.95], [1.0]), control)
