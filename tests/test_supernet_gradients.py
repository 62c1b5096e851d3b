"""Gate gradients of the binary mixed op, checked in float64 against explicit computation."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from proxylessnas import get_space
from proxylessnas.supernet import LayerSampler, MixedOp, SuperNet, alpha_gradient

LABELS = torch.tensor([0, 1, 2, 3])


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_supernet(seed: int = 0) -> SuperNet:
    torch.manual_seed(seed)
    # The paper's independent init: candidates that start as copies of each other (or as the
    # identity) have equal (or zero) gate gradients, which would make the checks below vacuous.
    supernet = SuperNet(get_space("tiny"), embed_smallest=False, zero_init_residual=False).double()
    with torch.no_grad():
        for a in supernet.arch_parameters():
            a.normal_(0.0, 0.7)
    return supernet


def images(seed: int = 1) -> torch.Tensor:
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def capture_layer_io(supernet: SuperNet) -> list[dict]:
    records = [{} for _ in supernet.mixed_ops]

    def hook(record):
        def store(module, inputs, output):
            record["x"] = inputs[0].detach().clone()
            record["y"] = output
            output.retain_grad()
        return store

    for mixed, record in zip(supernet.mixed_ops, records):
        mixed.register_forward_hook(hook(record))
    return records


def explicit_alpha_gradients(supernet: SuperNet, records: list[dict]) -> list[torch.Tensor]:
    """p * (G - <G, p>) over the gate set with G_k = <dL/dy, o_k(x)> from copies of the bodies."""
    expected = []
    for mixed, record in zip(supernet.mixed_ops, records):
        _, active, gate_set, _ = mixed.state
        gate_grads = []
        for k in gate_set:
            body = mixed.body(k)
            output = torch.zeros_like(record["y"]) if body is None else copy.deepcopy(body)(record["x"])
            gate_grads.append((record["y"].grad * output).sum())
        index = list(gate_set)
        probs = torch.softmax(mixed.alpha.detach()[index], 0)
        G = torch.stack(gate_grads)
        grad = torch.zeros_like(mixed.alpha)
        grad[index] = torch.stack([probs[i] * (G[i] - (G * probs).sum()) for i in range(len(index))])
        expected.append(grad)
    return expected


@pytest.mark.parametrize("mode", ["full", "full_v2", "two"])
def test_gate_gradients_equal_explicit_inner_products(mode):
    supernet = tiny_supernet()
    records = capture_layer_io(supernet)
    generator = torch.Generator().manual_seed(0)
    seen_zero_active = False
    for step in range(6):
        supernet.zero_grad(set_to_none=True)
        active = supernet.sample_arch_step(mode, generator)
        if step == 0:  # make sure a zero op is active somewhere, keeping the sampled gate set
            mixed = supernet.mixed_ops[-1]
            _, _, gate_set, _ = mixed.state
            zero = mixed.names.index("zero")
            mixed.use_gates(zero, gate_set if zero in gate_set else (zero, gate_set[0]), mode)
            if mode == "two":
                supernet._pairs[-1] = mixed.state[2]
            active[-1] = zero
        seen_zero_active |= any(m.body(i) is None for m, i in zip(supernet.mixed_ops, active))
        loss = nn.functional.cross_entropy(supernet(images(step)), LABELS)
        loss.backward()
        expected = explicit_alpha_gradients(supernet, records)
        for alpha, grad in zip(supernet.arch_parameters(), expected):
            assert torch.allclose(alpha.grad, grad, rtol=1e-9, atol=1e-14)
            if mode == "two":
                assert (alpha.grad != 0).sum() <= 2
        supernet.finish_arch_step()
    assert seen_zero_active


def test_full_and_full_v2_give_the_same_alpha_gradients():
    grads = {}
    for mode in ("full", "full_v2"):
        supernet = tiny_supernet()
        supernet.sample_arch_step(mode, torch.Generator().manual_seed(4))
        nn.functional.cross_entropy(supernet(images()), LABELS).backward(
            inputs=supernet.arch_parameters())
        grads[mode] = [a.grad for a in supernet.arch_parameters()]
        assert all(p.grad is None for p in supernet.weight_parameters())
    for a, b in zip(grads["full"], grads["full_v2"]):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-15)
        assert a.abs().sum() > 0


def test_two_path_rescale_keeps_unsampled_probabilities():
    supernet = tiny_supernet()
    optimizer = torch.optim.Adam(supernet.arch_parameters(), lr=0.1, betas=(0.0, 0.999))
    generator = torch.Generator().manual_seed(2)
    for step in range(5):
        before = [p.detach().clone() for p in supernet.probs()]
        alphas_before = [a.detach().clone() for a in supernet.arch_parameters()]
        supernet.sample_arch_step("two", generator)
        pairs = list(supernet._pairs)
        optimizer.zero_grad()
        nn.functional.cross_entropy(supernet(images(step)), LABELS).backward()
        optimizer.step()
        supernet.finish_arch_step()
        for p_old, p_new, a_old, a_new, pair in zip(before, supernet.probs(), alphas_before,
                                                    supernet.arch_parameters(), pairs):
            others = [i for i in range(len(p_old)) if i not in pair]
            assert torch.allclose(p_new[others], p_old[others], rtol=0, atol=1e-12)
            assert abs(float(p_new.detach()[list(pair)].sum() - p_old[list(pair)].sum())) < 1e-12
            assert torch.equal(a_new.detach()[others], a_old[others])
            assert not torch.allclose(a_new.detach()[list(pair)], a_old[list(pair)])


def test_alpha_gradient_formula_matches_softmax_jacobian():
    torch.manual_seed(0)
    alpha = torch.randn(6, dtype=torch.float64, requires_grad=True)
    G = torch.randn(6, dtype=torch.float64)
    (torch.softmax(alpha, 0) * G).sum().backward()
    assert torch.allclose(alpha_gradient(torch.softmax(alpha.detach(), 0), G), alpha.grad, rtol=1e-12)


# -- expectation on an enumerable problem ------------------------------------------------------
# A chain of three mixed ops whose candidates are linear convolutions (and zero, with the
# identity shortcut), under a loss linear in the last output. The loss is then multilinear in
# the gates, so the binary-gate estimator is unbiased for the gradient of the expected loss;
# the exact gradient comes from enumerating all 3^3 paths.

CHANNELS, SIDE, LAYERS = 3, 4, 3


def linear_chain(seed: int = 0) -> tuple[list[MixedOp], torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    chain = []
    for layer in range(LAYERS):
        convs = [nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1, bias=False),
                 nn.Conv2d(CHANNELS, CHANNELS, 1, bias=False)]
        mixed = MixedOp([("k3", convs[0]), ("k1", convs[1]), ("zero", None)], shortcut=True,
                        label=f"l{layer}").double()
        with torch.no_grad():
            for conv in convs:
                conv.weight.mul_(1.5)
            mixed.alpha.copy_(torch.randn(3) * 0.8)
        chain.append(mixed)
    x = torch.randn(2, CHANNELS, SIDE, SIDE, dtype=torch.float64)
    c = torch.randn(2, CHANNELS, SIDE, SIDE, dtype=torch.float64)
    return chain, x, c


def chain_loss(chain: list[MixedOp], x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    for mixed in chain:
        x = mixed(x)
    return (c * x).sum()


def path_losses(chain, x, c) -> dict[tuple[int, ...], float]:
    losses = {}
    with torch.no_grad():
        for path in itertools.product(range(3), repeat=LAYERS):
            for mixed, index in zip(chain, path):
                mixed.use_path(index)
            losses[path] = float(chain_loss(chain, x, c))
    return losses


def exact_expected_loss_gradient(chain, x, c) -> list[torch.Tensor]:
    losses = path_losses(chain, x, c)
    alphas = [m.alpha.detach().clone().requires_grad_() for m in chain]
    probs = [torch.softmax(a, 0) for a in alphas]
    expected = sum(torch.stack([p[i] for p, i in zip(probs, path)]).prod() * loss
                   for path, loss in losses.items())
    return list(torch.autograd.grad(expected, alphas))


def exact_two_path_expectation(chain, x, c) -> list[torch.Tensor]:
    """E[two-path estimate] by enumeration: pairs (ordered draws without replacement), the
    active member from p~, and, by multilinearity, the other layers' gates at their means."""
    losses = path_losses(chain, x, c)
    probs = [torch.softmax(m.alpha.detach(), 0) for m in chain]
    marginals = []  # P(active = k) under two-path sampling
    for p in probs:
        q = torch.zeros(3, dtype=torch.float64)
        for a, b in itertools.permutations(range(3), 2):
            pair_prob = p[a] * p[b] / (1 - p[a])
            q[a] += pair_prob * p[a] / (p[a] + p[b])
            q[b] += pair_prob * p[b] / (p[a] + p[b])
        marginals.append(q)
    result = []
    for layer, p in enumerate(probs):
        # Mean gate gradient: E[dL/dg_layer,k] = sum over other layers' actives of their marginals.
        G = torch.zeros(3, dtype=torch.float64)
        for path, loss in losses.items():
            weight = torch.stack([marginals[l][i] for l, i in enumerate(path) if l != layer]).prod()
            G[path[layer]] += weight * loss
        grad = torch.zeros(3, dtype=torch.float64)
        for a, b in itertools.permutations(range(3), 2):
            pair_prob = p[a] * p[b] / (1 - p[a])
            tilde = torch.stack([p[a], p[b]]) / (p[a] + p[b])
            grad[[a, b]] += pair_prob * alpha_gradient(tilde, G[[a, b]])
        result.append(grad)
    return result


def monte_carlo_alpha_gradients(chain, x, c, mode: str, samples: int, seed: int = 0):
    sampler = LayerSampler([3] * LAYERS)
    generator = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(samples):
        alphas = [m.alpha for m in chain]
        if mode == "two":
            pairs, active = sampler.sample_two(alphas, generator)
            for mixed, pair, index in zip(chain, pairs, active):
                mixed.use_gates(index, pair, mode)
        else:
            for mixed, index in zip(chain, sampler.sample_one(alphas, generator)):
                mixed.use_gates(index, range(3), mode)
        draws.append(torch.cat(torch.autograd.grad(chain_loss(chain, x, c), alphas)))
    draws = torch.stack(draws)
    return draws.mean(0), draws.std(0) / samples ** 0.5


@pytest.mark.parametrize("mode", ["full", "full_v2"])
def test_binary_gate_estimator_is_unbiased_for_multilinear_loss(mode):
    chain, x, c = linear_chain()
    exact = torch.cat(exact_expected_loss_gradient(chain, x, c))
    mean, stderr = monte_carlo_alpha_gradients(chain, x, c, mode, samples=1500)
    # Fixed seed; tolerance 4 standard errors per component, and the noise is small enough
    # (relative error of the mean below 10%) for a wrong estimator to fail.
    assert (mean - exact).abs().max() <= 4 * stderr.max()
    assert (mean - exact).norm() <= 0.1 * exact.norm()


def test_two_path_estimator_matches_its_enumerated_expectation():
    chain, x, c = linear_chain()
    exact_two = torch.cat(exact_two_path_expectation(chain, x, c))
    exact = torch.cat(exact_expected_loss_gradient(chain, x, c))
    mean, stderr = monte_carlo_alpha_gradients(chain, x, c, "two", samples=1500)
    assert (mean - exact_two).abs().max() <= 4 * stderr.max()
    # Its direction agrees with the exact gradient of the expected loss (a reweighting of
    # pairwise differences, not the same vector): cosine above 0.9 on this problem.
    cosine = torch.dot(exact_two, exact) / (exact_two.norm() * exact.norm())
    assert cosine > 0.9
