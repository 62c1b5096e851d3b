import pytest
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.search.band import LatencyBand
from proxylessnas.search.selection import (
    Candidate,
    band_candidates,
    pick_measured,
    select_by_measurement,
)


def _problem():
    torch.manual_seed(0)
    costs = [torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([1.5, 2.5, 4.0]), torch.tensor([1.0, 3.0, 5.0])]
    alphas = [torch.randn(len(c)) for c in costs]
    return alphas, costs, 2.0


def test_band_candidates_tile_the_band_most_probable_first():
    alphas, costs, fixed = _problem()
    found = band_candidates(alphas, costs, fixed, 7.0, 10.0, windows=3)
    argmax = tuple(int(a.argmax()) for a in alphas)
    assert argmax in [c.indices for c in found]
    assert len({c.indices for c in found}) == len(found)
    assert [c.log_prob for c in found] == sorted((c.log_prob for c in found), reverse=True)
    for c in found:
        assert c.predicted == fixed + sum(float(cost[i]) for cost, i in zip(costs, c.indices))
    inside = [c for c in found if 7.0 <= c.predicted <= 10.0]
    assert len(inside) >= 2  # one per non-empty window


def test_pick_measured_prefers_margin_then_band_then_closest():
    cands = [Candidate((0,), -1.0, 0, 10.45), Candidate((1,), -2.0, 0, 10.2), Candidate((2,), -3.0, 0, 9.0)]
    chosen, how, met = pick_measured(cands, LatencyBand(10.0, 0.05, "band"))
    assert chosen.indices == (1,) and "margin" in how and met  # 4.5 %: in the band, not with margin
    chosen, how, met = pick_measured(cands[:1], LatencyBand(10.0, 0.05, "band"))
    assert chosen.indices == (0,) and how.endswith("inside the band") and met
    chosen, how, met = pick_measured([cands[2]], LatencyBand(10.0, 0.05, "band"))
    assert "none met" in how and not met
    chosen, _, _ = pick_measured(cands, LatencyBand(10.0, 0.05, "under"))
    assert chosen.indices == (2,)  # the only one under T


def test_selection_corrects_a_drifted_machine():
    alphas, costs, fixed = _problem()
    target = 9.0

    def predicted(indices):
        return fixed + sum(float(c[i]) for c, i in zip(costs, indices))

    def propose(drift):  # +-7.5 % of the target, moved by the observed drift
        low, high = target * 0.925 / drift, target * 1.075 / drift
        return band_candidates(alphas, costs, fixed, low, high, windows=40)

    calls = []

    def measure(archs):  # the machine now runs 20 % slower than the calibration says
        calls.append(len(archs))
        return [1.2 * predicted(a) for a in archs]

    band = LatencyBand(target, 0.05, "band")
    chosen, how, measured = select_by_measurement(propose, measure, lambda p: p, band)
    assert abs(chosen.measured / target - 1) <= 0.05 and "inside the band" in how
    assert len(calls) == 2  # the first round missed, the second moved by the drift and met it
    assert [c.log_prob for c in measured] == sorted((c.log_prob for c in measured), reverse=True)
    one_round = select_by_measurement(propose, measure, lambda p: p, band, rounds=1)
    assert "none met" in one_round[1]


def test_meets_target_in_measured_units():
    band, under = LatencyBand(2.928, 0.05, "band"), LatencyBand(2.928, 0.05, "under")
    assert band.meets(2.7953)  # -4.5 %: inside +-5 %
    assert not band.meets(3.08)
    assert under.meets(2.9) and not under.meets(2.95)
    assert not under.meets(2.9, share=0.6)  # margin: at most 0.98 T


def test_band_owns_every_derived_band():
    band, under = LatencyBand(10.0, 0.05, "band"), LatencyBand(10.0, 0.05, "under")
    assert (band.low, band.high) == pytest.approx((9.5, 10.5))
    assert (under.low, under.high) == (0.0, 10.0)
    assert (band.goal, under.goal) == pytest.approx((10.0, 9.75))
    assert (band.inner_low, band.inner_high) == pytest.approx((9.75, 10.25))
    assert (under.aim_low, under.aim_high) == pytest.approx((9.75 * 0.85, 9.75 * 1.15))
    assert (band.proposal_low, band.proposal_high) == pytest.approx((9.25, 10.75))
    assert (under.proposal_low, under.proposal_high) == pytest.approx((8.5, 10.0))
    assert band.accepts(10.4) and not band.accepts(10.6) and under.accepts(0.1)
    with pytest.raises(ProxylessError, match="below the cheapest"):
        band.check_reachable(11.0, 20.0)
    with pytest.raises(ProxylessError, match="above the most expensive"):
        band.check_reachable(1.0, 9.0)
    under.check_reachable(1.0, 9.0)
