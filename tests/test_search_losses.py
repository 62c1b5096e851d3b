import math

import pytest
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.search.losses import (
    LATENCY_LOSSES,
    get_latency_loss,
    latency_loss,
    latency_loss_names,
)

# Brute-force formulas in plain Python floats, written independently of the module.
EXPECTED = {
    "mul_log": lambda ce, e, t: 0.2 * ce * (math.log(e) / math.log(t)) ** 0.3,
    "add_linear": lambda ce, e, t: ce + 0.1 * (e - t) / t,
    "paper": lambda ce, e, t: ce + (0.1 / t) * e,
    "absolute": lambda ce, e, t: ce + 0.1 * abs(e / t - 1),
    "hinge": lambda ce, e, t: ce + 0.1 * max(0.0, e / t - 1),
}


def scalar(value: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64, requires_grad=grad)


def test_registry_has_the_five_losses():
    assert latency_loss_names() == ["mul_log", "add_linear", "paper", "absolute", "hinge"]


@pytest.mark.parametrize("name", list(LATENCY_LOSSES))
@pytest.mark.parametrize("latency", [12.0, 20.0, 31.0])
def test_value_matches_formula(name, latency):
    ce, target = 1.7, 20.0
    loss, details = get_latency_loss(name)(scalar(ce), scalar(latency), target)
    assert loss.item() == pytest.approx(EXPECTED[name](ce, latency, target), rel=1e-12)
    assert details["loss"] == pytest.approx(loss.item())
    assert details["ce"] == pytest.approx(ce) and details["expected_latency"] == pytest.approx(latency)
    assert details["target"] == target


@pytest.mark.parametrize("name", list(LATENCY_LOSSES))
def test_gradient_matches_finite_difference(name):
    ce, target, latency, eps = 0.9, 20.0, 27.0, 1e-6
    e = scalar(latency, grad=True)
    c = scalar(ce, grad=True)
    loss, _ = latency_loss(name, c, e, target)
    loss.backward()
    f = EXPECTED[name]
    assert e.grad.item() == pytest.approx((f(ce, latency + eps, target) - f(ce, latency - eps, target))
                                          / (2 * eps), rel=1e-5)
    assert c.grad.item() == pytest.approx((f(ce + eps, latency, target) - f(ce - eps, latency, target))
                                          / (2 * eps), rel=1e-5)
    assert e.grad.item() > 0  # above the target every loss pushes latency down


def test_hinge_is_free_below_target_and_absolute_pushes_up():
    e = scalar(15.0, grad=True)
    latency_loss("hinge", scalar(1.0), e, 20.0)[0].backward()
    assert e.grad.item() == 0.0
    e = scalar(15.0, grad=True)
    latency_loss("absolute", scalar(1.0), e, 20.0)[0].backward()
    assert e.grad.item() < 0


def test_mul_log_equals_scaled_ce_at_target():
    loss, details = latency_loss("mul_log", scalar(2.0), scalar(80.0), 80.0)
    assert loss.item() == pytest.approx(0.4)
    assert details["latency_term"] == pytest.approx(1.0)


def test_parameters_are_passed_through():
    loss, _ = latency_loss("add_linear", scalar(1.0), scalar(30.0), 20.0, weight=2.0)
    assert loss.item() == pytest.approx(1.0 + 2.0 * 0.5)
    loss, _ = latency_loss("mul_log", scalar(1.0), scalar(400.0), 20.0, scale=1.0, exponent=1.0)
    assert loss.item() == pytest.approx(2.0)


def test_unknown_name_lists_the_names():
    with pytest.raises(ProxylessError) as err:
        get_latency_loss("l2")
    for name in LATENCY_LOSSES:
        assert name in err.value.fix


def test_unknown_parameter_is_an_error():
    with pytest.raises(ProxylessError, match="lambda"):
        latency_loss("hinge", scalar(1.0), scalar(1.0), 1.0, **{"lambda": 0.3})


@pytest.mark.parametrize("target", [0.0, -3.0, float("nan")])
def test_bad_target_is_an_error(target):
    with pytest.raises(ProxylessError, match="target"):
        latency_loss("add_linear", scalar(1.0), scalar(1.0), target)


def test_mul_log_refuses_target_at_or_below_one():
    with pytest.raises(ProxylessError, match="above 1"):
        latency_loss("mul_log", scalar(1.0), scalar(0.5), 0.8)
