"""benchmarks/nasbench201.py: the rank statistics and the table look-ups that judge a search."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import nasbench201 as judge  # noqa: E402

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_kendall_and_spearman_against_hand_values():
    assert judge.kendall_tau([1, 2, 3], [4, 5, 6]) == pytest.approx(1.0)
    assert judge.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # one swapped pair out of six: (5 - 1) / 6
    assert judge.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with a tie in b: 2 concordant, 3 discordant, 1 tied in b only -> -1 / sqrt(5 * 6)
    assert judge.kendall_tau([1, 2, 3, 4], [1, 2, 2, 0.5]) == pytest.approx(
        (2 - 3) / (6 * 5) ** 0.5)
    # 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert judge.spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert judge.ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_every_cell_string_is_in_the_table_and_the_best_ranks_first():
    if not judge.TABLE.is_file():
        pytest.skip("the NAS-Bench-201 table is not in ../shared")
    cells = judge.all_cells()
    assert len(cells) == len(set(cells)) == 15625 and set(cells) == set(judge.table())
    best = judge.judge(BEST)
    assert best["rank"] == 1 and best["percentile"] == 100.0
    assert best["cifar10_test"] == pytest.approx(94.3733, abs=1e-3)
