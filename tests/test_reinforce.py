import itertools

import pytest
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.search.reinforce import (
    MovingAverageBaseline,
    log_prob,
    reinforce_loss,
    reward,
    sample_architectures,
    surrogate_loss,
)

SIZES = (3, 2, 3)  # 18 architectures: small enough to enumerate


def problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    alphas = [torch.randn(n, generator=generator, dtype=torch.float64) for n in SIZES]
    # rewards around 5 so that a baseline matters for the variance
    table = 5.0 + torch.rand(*SIZES, generator=generator, dtype=torch.float64)
    return alphas, table


def exact_gradient(alphas, table):
    """grad_alpha of E_p[R] = sum_a p(a) R(a), by enumeration and autograd in float64."""
    alphas = [a.clone().requires_grad_() for a in alphas]
    probs = [a.softmax(0) for a in alphas]
    expected = sum(probs[0][i] * probs[1][j] * probs[2][k] * table[i, j, k]
                   for i, j, k in itertools.product(*(range(n) for n in SIZES)))
    return torch.cat(torch.autograd.grad(expected, alphas))


def estimate(alphas, table, baseline: MovingAverageBaseline | None, batches=3000, batch=10, seed=0):
    """Mean of the estimator over many seeded batches; also the standard error per coordinate."""
    generator = torch.Generator().manual_seed(seed)
    leaves = [a.clone().requires_grad_() for a in alphas]
    probs = [a.softmax(0).detach() for a in leaves]
    samples = sample_architectures(probs, batches * batch, generator).reshape(batches, batch, len(SIZES))
    per_batch = []
    for b in range(batches):
        rewards = table[samples[b, :, 0], samples[b, :, 1], samples[b, :, 2]]
        log_probs = log_prob(leaves, samples[b])
        if baseline is None:
            loss = surrogate_loss(rewards, log_probs, 0.0)
        else:
            loss, _ = reinforce_loss(rewards, log_probs, baseline)
        grads = torch.cat(torch.autograd.grad(-loss, leaves))
        per_batch.append(grads)
    stacked = torch.stack(per_batch)
    return stacked.mean(0), stacked.std(0) / batches ** 0.5


def test_reward_formula():
    assert reward(0.8, 20.0, 10.0, exponent=0.1).item() == pytest.approx(0.8 * 0.5 ** 0.1)
    rewards = reward(torch.tensor([0.5, 0.5]), torch.tensor([5.0, 10.0]), 10.0)
    assert rewards[0] > rewards[1]  # faster nets earn more at equal accuracy
    with pytest.raises(ProxylessError):
        reward(0.5, 1.0, 0.0)


def test_log_prob_matches_enumeration():
    alphas, _ = problem()
    probs = [a.softmax(0) for a in alphas]
    indices = torch.tensor([[2, 1, 0], [0, 0, 2]])
    expected = [float(torch.log(probs[0][i] * probs[1][j] * probs[2][k])) for i, j, k in indices.tolist()]
    assert log_prob(alphas, indices).tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("baseline", ["moving", "none"])
def test_estimator_is_unbiased(baseline):
    """Mean over 3000 seeded batches of 10 matches the exact gradient within 4 standard errors
    (plus 1e-3 absolute), and the standard error is small enough for that to mean something."""
    alphas, table = problem()
    exact = exact_gradient(alphas, table)
    mean, stderr = estimate(alphas, table, MovingAverageBaseline(decay=0.9) if baseline == "moving" else None)
    assert torch.all((mean - exact).abs() <= 4 * stderr + 1e-3), (mean, exact, stderr)
    if baseline == "moving":
        assert stderr.max() < 0.1 * exact.abs().max()


def test_baseline_reduces_variance():
    alphas, table = problem()
    _, with_baseline = estimate(alphas, table, MovingAverageBaseline(decay=0.9), batches=500)
    _, without = estimate(alphas, table, None, batches=500)
    assert with_baseline.max() < 0.5 * without.max()


def test_advantages_use_the_baseline_from_before_the_update():
    baseline = MovingAverageBaseline(decay=0.5)
    log_probs = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    _, first = reinforce_loss(torch.tensor([1.0, 3.0]), log_probs, baseline)
    assert first["baseline"] == 0.0 and first["baseline_next"] == 2.0  # first batch sets b = mean
    loss, second = reinforce_loss(torch.tensor([4.0, 6.0]), log_probs, baseline)
    assert second["baseline"] == 2.0
    assert second["baseline_next"] == pytest.approx(0.5 * 2.0 + 0.5 * 5.0)  # old value weighted by decay
    (grad,) = torch.autograd.grad(loss, log_probs)
    assert grad.tolist() == pytest.approx([-(4.0 - 2.0) / 2, -(6.0 - 2.0) / 2])


def test_baseline_state_round_trip_and_bad_decay():
    baseline = MovingAverageBaseline(decay=0.99)
    baseline.update(torch.tensor([0.3, 0.5]))
    restored = MovingAverageBaseline()
    restored.load_state_dict(baseline.state_dict())
    assert restored == baseline
    with pytest.raises(ProxylessError):
        MovingAverageBaseline(decay=1.0)


def test_sampling_is_seeded_and_follows_p():
    probs = [torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64),
             torch.tensor([0.5, 0.5], dtype=torch.float64)]
    first = sample_architectures(probs, 20000, torch.Generator().manual_seed(1))
    again = sample_architectures(probs, 20000, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and first.shape == (20000, 2)
    frequencies = torch.bincount(first[:, 0], minlength=3).double() / 20000
    assert frequencies.tolist() == pytest.approx([0.7, 0.2, 0.1], abs=0.015)
