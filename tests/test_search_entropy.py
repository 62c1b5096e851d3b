"""The entropy term of the architecture loss: value, gradient (float64 brute force), ramp, config."""

import math

import pytest
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.search.config import load_config
from proxylessnas.search.strategies import add_entropy_term, entropy_penalty, entropy_weight


def test_penalty_is_one_per_uniform_decision_and_zero_for_one_hot():
    uniform = [torch.full((k,), 1.0 / k, dtype=torch.float64) for k in (2, 5, 7)]
    assert float(entropy_penalty(uniform)) == pytest.approx(3.0)
    one_hot = [torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
               torch.tensor([0.0, 1.0], dtype=torch.float64)]
    assert float(entropy_penalty(one_hot)) == pytest.approx(0.0, abs=1e-12)


def test_penalty_skips_fixed_decisions_and_matches_hand_value():
    probs = [torch.tensor([0.9, 0.1], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)]
    expected = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert float(entropy_penalty(probs)) == pytest.approx(expected, rel=1e-12)


def test_penalty_gradient_matches_finite_differences():
    torch.manual_seed(0)
    alphas = [torch.randn(k, dtype=torch.float64, requires_grad=True) for k in (3, 4)]

    def value(*logits):
        return entropy_penalty([torch.softmax(a, 0) for a in logits])

    assert torch.autograd.gradcheck(value, tuple(alphas))
    # and the sign: the gradient step (descent) lowers the entropy
    loss = value(*alphas)
    grads = torch.autograd.grad(loss, alphas)
    with torch.no_grad():
        stepped = [a - 0.01 * g for a, g in zip(alphas, grads)]
    assert float(value(*stepped)) < float(loss)


def test_weight_ramps_linearly_and_is_clamped():
    assert entropy_weight(0.4, 0.0) == 0.0
    assert entropy_weight(0.4, 0.5) == pytest.approx(0.2)
    assert entropy_weight(0.4, 1.0) == pytest.approx(0.4)
    assert entropy_weight(0.4, 1.7) == pytest.approx(0.4)


def test_add_entropy_term_records_and_is_off_at_zero():
    loss = torch.tensor(1.0, dtype=torch.float64)
    probs = [torch.full((4,), 0.25, dtype=torch.float64)]
    details: dict = {}
    assert add_entropy_term(loss, details, probs, 0.0) is loss and "entropy_term" not in details
    out = add_entropy_term(loss, details, probs, 0.5)
    assert float(out) == pytest.approx(1.5) and details["entropy_term"] == pytest.approx(0.5)


@pytest.mark.parametrize("value", ["-0.1", "inf", "nan"])
def test_config_refuses_bad_entropy_weight(value):
    with pytest.raises(ProxylessError, match="arch.entropy_weight"):
        load_config(None, [f"arch.entropy_weight={value}"])
