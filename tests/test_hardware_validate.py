import itertools
import math

import pytest

from proxylessnas import get_space
from proxylessnas.hardware.validate import accuracy_metrics, kendall_tau, sample_archs


def test_kendall_tau_against_brute_force_without_ties():
    x = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0]
    y = [2.0, 1.0, 3.0, 5.0, 4.0, 8.0, 0.5, 7.0]
    pairs = list(itertools.combinations(range(len(x)), 2))
    sign = sum(math.copysign(1, (x[i] - x[j]) * (y[i] - y[j])) for i, j in pairs)
    assert kendall_tau(x, y) == pytest.approx(sign / len(pairs))
    assert kendall_tau(x, x) == 1.0 and kendall_tau(x, [-v for v in x]) == -1.0


def test_kendall_tau_b_with_ties():
    # scipy.stats.kendalltau([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9128709291752769 (tau-b)
    assert kendall_tau([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9128709291752769)


def test_accuracy_metrics_by_hand():
    m = accuracy_metrics([1.04, 2.18, 2.73, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert m["mae"] == pytest.approx((0.04 + 0.18 + 0.27 + 0.0) / 4)
    assert m["mape"] == pytest.approx(100 * (0.04 + 0.09 + 0.09 + 0.0) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0.04**2 + 0.18**2 + 0.27**2) / 4))
    assert m["within_5"] == 0.5 and m["within_10"] == 1.0


def test_sampled_archs_are_valid_and_reproducible():
    space = get_space("tiny")
    a, b = sample_archs(space, 6, seed=3), sample_archs(space, 6, seed=3)
    assert [x.choices for x in a] == [x.choices for x in b]
    assert len({tuple(x.indices(space)) for x in a}) > 1
