import itertools

import pytest
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.search.controller import (
    LatencyController,
    TargetConfig,
    arch_cost,
    argmax_cost,
    cheapest_cost,
    check_target,
    constrained_argmax,
    most_expensive_cost,
)


def toy_problem(seed: int = 0, layers: int = 12, candidates: int = 5):
    """Independent layers with known candidate costs; the 'error' falls with log(cost) (CE favours
    expensive ops), with a layer-specific strength so the layers trade off differently."""
    generator = torch.Generator().manual_seed(seed)
    costs = torch.sort(torch.rand(layers, candidates, generator=generator, dtype=torch.float64) * 9 + 1,
                       dim=1).values
    strength = torch.rand(layers, 1, generator=generator, dtype=torch.float64) * 0.5 + 0.25
    errors = -strength * torch.log(costs)
    return 5.0, costs, errors


def search_toy(config: TargetConfig, seed: int = 0, epochs: int = 24, steps: int = 50):
    fixed, costs, errors = toy_problem(seed)
    torch.manual_seed(seed)
    alphas = (torch.randn(costs.shape, dtype=torch.float64) * 1e-3).requires_grad_()
    optimizer = torch.optim.Adam([alphas], lr=0.05, betas=(0.0, 0.999))
    controller = LatencyController(config)
    check_target(config, fixed, list(costs))
    for epoch in range(epochs):
        for _ in range(steps):
            probs = alphas.softmax(dim=1)
            ce = (probs * errors).sum()
            expected = fixed + (probs * costs).sum()
            loss, _ = controller.loss(ce, expected)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            controller.update(expected.item())
        check = controller.check_epoch(epoch, argmax_cost(fixed, list(costs), list(alphas)))
    return check, controller


def test_cost_helpers_against_enumeration():
    fixed, costs, _ = toy_problem(1, layers=3, candidates=3)
    all_costs = [arch_cost(fixed, list(costs), picks) for picks in itertools.product(range(3), repeat=3)]
    assert cheapest_cost(fixed, list(costs)) == pytest.approx(min(all_costs))
    assert most_expensive_cost(fixed, list(costs)) == pytest.approx(max(all_costs))
    alphas = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
    assert argmax_cost(fixed, list(costs), list(alphas)) == pytest.approx(
        fixed + costs[0, 1].item() + costs[1, 0].item() + costs[2, 2].item())


@pytest.mark.parametrize("fraction", [0.15, 0.4, 0.65, 0.9])
def test_band_mode_lands_argmax_within_5_percent_in_one_run(fraction):
    fixed, costs, _ = toy_problem()
    low, high = cheapest_cost(fixed, list(costs)), most_expensive_cost(fixed, list(costs))
    target = low + fraction * (high - low)
    check, controller = search_toy(TargetConfig(target, mode="band"))
    assert abs(check.cost / target - 1) <= 0.05, (check, target)
    assert check.accepted
    # without the controller the CE alone takes the most expensive ops: the target really binds
    assert target < high * 0.95


@pytest.mark.parametrize("fraction", [0.3, 0.75])
def test_under_mode_lands_argmax_under_target(fraction):
    fixed, costs, _ = toy_problem()
    low, high = cheapest_cost(fixed, list(costs)), most_expensive_cost(fixed, list(costs))
    target = low + fraction * (high - low)
    check, controller = search_toy(TargetConfig(target, mode="under"))
    assert check.cost <= target and check.accepted
    assert check.cost >= 0.85 * target  # close to the target, not needlessly cheap
    assert controller.weight >= 0


def test_target_below_cheapest_is_refused_before_training():
    fixed, costs, _ = toy_problem()
    cheapest = cheapest_cost(fixed, list(costs))
    with pytest.raises(ProxylessError, match="below the cheapest") as err:
        check_target(TargetConfig(cheapest * 0.8), fixed, list(costs), unit="ms")
    assert "ms" in err.value.fix
    with pytest.raises(ProxylessError, match="below the cheapest"):
        check_target(TargetConfig(cheapest * 0.99, mode="under"), fixed, list(costs))
    check_target(TargetConfig(cheapest * 0.99, mode="band"), fixed, list(costs))  # within 5%: fine


def test_target_above_most_expensive_is_refused_in_band_mode_only():
    fixed, costs, _ = toy_problem()
    expensive = most_expensive_cost(fixed, list(costs))
    with pytest.raises(ProxylessError, match="above the most expensive"):
        check_target(TargetConfig(expensive * 1.2), fixed, list(costs))
    check_target(TargetConfig(expensive * 1.2, mode="under"), fixed, list(costs))


@pytest.mark.parametrize("kwargs", [{"target": 0.0}, {"target": 5.0, "mode": "near"},
                                    {"target": 5.0, "tolerance": 1.5}, {"target": 5.0, "step_size": 0}])
def test_bad_config_is_an_error(kwargs):
    with pytest.raises(ProxylessError):
        TargetConfig(**kwargs)


def test_update_rule_signs_and_dead_zone():
    controller = LatencyController(TargetConfig(10.0, step_size=0.5, weight_scale=0.1, initial_weight=1.0))
    assert controller.update(12.0) == pytest.approx(1.0 + 0.5 * 0.2 * 1.1)  # too slow: lambda up
    before = controller.weight
    assert controller.update(9.0) < before  # too fast: lambda down
    under = LatencyController(TargetConfig(10.0, mode="under", initial_weight=0.0))
    assert under.update(1.0) == 0.0  # an inequality multiplier stays >= 0
    check = controller.check_epoch(0, 10.1)  # inside the inner band: aim untouched
    assert check.aim == 10.0 and check.accepted
    check = controller.check_epoch(1, 12.0)
    assert check.aim == pytest.approx(10.0 * (10.0 / 12.0) ** 0.5) and not check.accepted


def test_loss_is_the_augmented_lagrangian():
    controller = LatencyController(TargetConfig(10.0, initial_weight=2.0, penalty_factor=20.0,
                                                weight_scale=0.1))
    ce = torch.tensor(1.5, dtype=torch.float64)
    expected = torch.tensor(11.0, dtype=torch.float64)
    loss, details = controller.loss(ce, expected)
    rho = 20.0 * 2.1
    assert loss.item() == pytest.approx(1.5 + 2.0 * 0.1 + 0.5 * rho * 0.01)
    assert details["lambda"] == 2.0


def test_state_round_trip():
    controller = LatencyController(TargetConfig(10.0))
    controller.update(13.0)
    controller.check_epoch(0, 13.0)
    restored = LatencyController(TargetConfig(10.0))
    restored.load_state_dict(controller.state_dict())
    assert restored == controller


def test_constrained_argmax_matches_brute_force():
    generator = torch.Generator().manual_seed(3)
    fixed = 2.0
    costs = [torch.rand(n, generator=generator, dtype=torch.float64) * 5 for n in (3, 4, 2, 3)]
    log_probs = [torch.log_softmax(torch.randn(len(c), generator=generator, dtype=torch.float64), 0)
                 for c in costs]
    for low, high in [(6.0, 7.0), (8.0, 8.5), (3.0, 20.0)]:
        best, best_score = None, -float("inf")
        for picks in itertools.product(*(range(len(c)) for c in costs)):
            cost = arch_cost(fixed, costs, picks)
            score = sum(lp[i].item() for lp, i in zip(log_probs, picks))
            if low <= cost <= high and score > best_score:
                best, best_score = list(picks), score
        assert constrained_argmax(log_probs, costs, fixed, low, high) == best
    assert constrained_argmax(log_probs, costs, fixed, 0.0, 1.0) is None
