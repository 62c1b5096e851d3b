import torch

from proxylessnas.search.selection import (
    Candidate,
    band_candidates,
    meets_target,
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
    chosen, how, met = pick_measured(cands, 10.0, 0.05, "band")
    assert chosen.indices == (1,) and "margin" in how and met  # 4.5 %: in the band, not with margin
    chosen, how, met = pick_measured(cands[:1], 10.0, 0.05, "band")
    assert chosen.indices == (0,) and how.endswith("inside the band") and met
    chosen, how, met = pick_measured([cands[2]], 10.0, 0.05, "band")
    assert "none met" in how and not met
    chosen, _, _ = pick_measured(cands, 10.0, 0.05, "under")
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

    chosen, how, measured = select_by_measurement(propose, measure, lambda p: p, target, 0.05, "band")
    assert abs(chosen.measured / target - 1) <= 0.05 and "inside the band" in how
    assert len(calls) == 2  # the first round missed, the second moved by the drift and met it
    assert [c.log_prob for c in measured] == sorted((c.log_prob for c in measured), reverse=True)
    one_round = select_by_measurement(propose, measure, lambda p: p, target, 0.05, "band", rounds=1)
    assert "none met" in one_round[1]


def test_meets_target_in_measured_units():
    assert meets_target(2.7953, 2.928, 0.05, "band")  # -4.5 %: inside +-5 %
    assert not meets_target(3.08, 2.928, 0.05, "band")
    assert meets_target(2.9, 2.928, 0.05, "under") and not meets_target(2.95, 2.928, 0.05, "under")
    assert not meets_target(2.9, 2.928, 0.05, "under", share=0.6)  # margin: at most 0.98 T
