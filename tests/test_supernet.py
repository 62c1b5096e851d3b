"""SuperNet: structure, sampling state, deriving, weight-step isolation, baselines, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from proxylessnas import Arch, ProxylessError, build_net, get_space
from proxylessnas.supernet import MixedOp, SuperNet

pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_supernet(mixed_op: str = "binary", seed: int = 0, **overrides) -> SuperNet:
    """The paper's independent init (test_supernet_init.py covers the default one): every
    candidate computes its own function and every weight of a sampled path gets a gradient from
    the first step, so the isolation and baseline checks are not vacuous."""
    torch.manual_seed(seed)
    return SuperNet(get_space("tiny", **overrides), mixed_op=mixed_op, embed_smallest=False,
                    zero_init_residual=False).double()


def images(batch: int = 4, seed: int = 1, resolution: int = 16) -> torch.Tensor:
    return torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def test_paper_space_weight_count_and_partition():
    supernet = SuperNet(get_space("proxyless-imagenet"), num_classes=1000)
    weights, alphas = supernet.weight_parameters(), supernet.arch_parameters()
    assert sum(p.numel() for p in weights) == 16_034_168
    assert [a.numel() for a in alphas] == [len(l.candidates) for l in supernet.space.searched_layers]
    assert sum(a.numel() for a in alphas) == 141
    ids = [id(p) for p in weights] + [id(p) for p in alphas]
    assert len(ids) == len(set(ids)) == len(list(supernet.parameters()))


def test_alpha_init_is_small_normal():
    supernet = SuperNet(get_space("proxyless-imagenet", num_classes=10))
    flat = torch.cat([a.detach() for a in supernet.arch_parameters()])
    assert flat.abs().max() < 1e-2 and 2e-4 < flat.std() < 5e-3


def test_probs_are_softmax_and_differentiable():
    supernet = tiny_supernet()
    probs = supernet.probs()
    for p, a in zip(probs, supernet.arch_parameters()):
        assert torch.allclose(p, torch.softmax(a.detach(), 0))
    probs[0][1].backward()
    assert supernet.arch_parameters()[0].grad is not None


def test_forward_before_sampling_is_an_error():
    supernet = tiny_supernet()
    with pytest.raises(ProxylessError, match="no path chosen"):
        supernet(images())


@pytest.mark.parametrize("call", [
    lambda s: s.sample_arch_step("three"),
    lambda s: s.set_path([0, 0]),
    lambda s: s.set_path([0, 0, 0, 9]),
    lambda s: s.log_prob([0]),
])
def test_bad_arguments_raise_proxyless_error(call):
    with pytest.raises(ProxylessError):
        call(tiny_supernet())


def test_unknown_mixed_op_and_weighted_modes():
    with pytest.raises(ProxylessError, match="unknown mixed op"):
        SuperNet(get_space("tiny"), mixed_op="enas")
    with pytest.raises(ProxylessError, match="needs binary gates"):
        tiny_supernet("darts").sample_arch_step("two")


def test_sampling_is_reproducible_and_follows_probabilities():
    supernet = tiny_supernet()
    with torch.no_grad():
        for a in supernet.arch_parameters():
            a.copy_(torch.linspace(-1.0, 1.0, a.numel()))
    first = supernet.sample_weight_step(torch.Generator().manual_seed(3))
    assert first == supernet.sample_weight_step(torch.Generator().manual_seed(3))
    assert [m.state for m in supernet.mixed_ops] == [("path", i) for i in first]
    generator = torch.Generator().manual_seed(0)
    draws = torch.tensor([supernet.sample_arch(generator) for _ in range(2000)])
    for layer, p in enumerate(supernet.probs()):
        freq = torch.bincount(draws[:, layer], minlength=p.numel()).double() / len(draws)
        # 2000 draws: standard error <= 0.0112; 4.5 standard errors allowed.
        assert torch.allclose(freq, p.detach(), atol=0.05)


def test_sample_two_pairs_and_active_distribution():
    supernet = tiny_supernet()
    alpha = supernet.arch_parameters()[1]
    with torch.no_grad():
        alpha.copy_(torch.tensor([1.0, 0.0, -0.5, 0.5, -1.0], dtype=torch.float64))
    p = torch.softmax(alpha.detach(), 0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        active = supernet.sample_arch_step("two", generator)
        for mixed, index in zip(supernet.mixed_ops, active):
            kind, state_active, pair, recompute = mixed.state
            assert kind == "gates" and recompute and state_active == index
            assert len(set(pair)) == 2 and index in pair
    samples = 3000
    pair_counts = torch.zeros(5, 5, dtype=torch.float64)
    first_active = torch.zeros(5, 5, dtype=torch.float64)
    for _ in range(samples):
        pairs, active = supernet._sampler.sample_two(supernet.arch_parameters(), generator)
        a, b = pairs[1]
        pair_counts[a, b] += 1
        first_active[a, b] += active[1] == a
    # P(first = i, second = j) for multinomial without replacement: p_i p_j / (1 - p_i);
    # standard error <= 0.0092, tolerance about 3.3 of them.
    exact = p[:, None] * p[None, :] / (1 - p[:, None])
    exact.fill_diagonal_(0)
    assert (pair_counts / samples - exact).abs().max() < 0.03
    # The active member follows p~ = softmax(alpha_pair): P(first) = p_a / (p_a + p_b).
    mask = pair_counts > 100
    tilde = (p[:, None] / (p[:, None] + p[None, :]))[mask]
    assert (first_active[mask] / pair_counts[mask] - tilde).abs().max() < 0.15


def test_weight_paths_follow_p_or_the_uniform_distribution():
    supernet = tiny_supernet()
    alpha = supernet.arch_parameters()[1]
    with torch.no_grad():
        alpha.copy_(torch.tensor([3.0, 0.0, -0.5, 0.5, -1.0], dtype=torch.float64))
    p = torch.softmax(alpha.detach(), 0)
    samples = 2000  # standard error of a frequency <= 0.0112; tolerance about 4 of them
    for paths, expected in (("distribution", p), ("uniform", torch.full((5,), 0.2, dtype=torch.float64))):
        generator = torch.Generator().manual_seed(0)
        counts = torch.zeros(5, dtype=torch.float64)
        for _ in range(samples):
            counts[supernet.sample_weight_step(generator, paths)[1]] += 1
        assert (counts / samples - expected).abs().max() < 0.045, paths
    with pytest.raises(ProxylessError, match="unknown weight paths 'fair'"):
        supernet.sample_weight_step(None, "fair")


def test_sample_arch_and_log_prob_leave_state_and_match_brute_force():
    supernet = tiny_supernet()
    supernet.set_path([1, 2, 3, 4])
    states = [m.state for m in supernet.mixed_ops]
    indices = supernet.sample_arch(torch.Generator().manual_seed(5))
    assert [m.state for m in supernet.mixed_ops] == states
    log_prob = supernet.log_prob(indices)
    brute = sum(torch.log(torch.softmax(a.detach(), 0)[i])
                for a, i in zip(supernet.arch_parameters(), indices))
    assert torch.allclose(log_prob.detach(), brute)
    log_prob.backward()
    assert all(a.grad is not None for a in supernet.arch_parameters())


def test_export_is_argmax_and_derive_inherits_exactly():
    supernet = tiny_supernet()
    with torch.no_grad():
        for a, best in zip(supernet.arch_parameters(), [2, 4, 1, 4]):
            a[best] += 1.0
    arch = supernet.export()
    assert [op.token for op in arch.choices.values()] == ["mb_k5_e1", "zero", "mb_k3_e3", "zero"]
    assert arch.indices(supernet.space) == [2, 4, 1, 4]
    # Train a little so BN statistics and weights differ from a fresh init.
    optimizer = torch.optim.SGD(supernet.weight_parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        supernet.sample_weight_step(generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(supernet(images()), torch.tensor([0, 1, 2, 3])).backward()
        optimizer.step()
    for indices in ([2, 4, 1, 4], [0, 1, 2, 3]):
        chosen = Arch.from_ops(supernet.space, [l.candidates[i] for l, i in
                                                zip(supernet.space.searched_layers, indices)])
        net = supernet.derive(chosen).eval()
        supernet.eval().set_path(indices)
        with torch.no_grad():
            assert torch.equal(net(images(seed=9)), supernet(images(seed=9)))
        fresh = supernet.derive(chosen, inherit=False).eval()
        with torch.no_grad():
            assert not torch.allclose(fresh(images(seed=9)), supernet(images(seed=9)))
    assert isinstance(supernet.derive(), type(build_net(supernet.space, arch)))


def test_weight_step_leaves_unsampled_paths_untouched():
    supernet = tiny_supernet()
    optimizer = torch.optim.SGD(supernet.weight_parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=1e-2)
    labels = torch.tensor([0, 1, 2, 3])
    for step, path in enumerate(([0, 1, 2, 3], [1, 2, 3, 0], [0, 1, 2, 3])):
        supernet.set_path(path)
        before = {name: p.detach().clone() for name, p in supernet.named_parameters()}
        optimizer.zero_grad()
        nn.functional.cross_entropy(supernet(images(seed=step)), labels).backward()
        assert all(a.grad is None for a in supernet.arch_parameters())
        optimizer.step()
        for layer, (mixed, chosen) in enumerate(zip(supernet.mixed_ops, path)):
            for index, name in enumerate(mixed.names):
                if name == "zero":
                    continue
                changed = [not torch.equal(p, before[f"blocks.{layer + 1}.candidates.{name}.{n}"])
                           for n, p in mixed.body(index).named_parameters()]
                # Unused paths (momentum from step 0 included) stay bit-identical.
                assert all(changed) if index == chosen else not any(changed), (step, layer, name)


def test_arch_step_recomputation_leaves_batch_norm_statistics_alone():
    supernet = tiny_supernet()
    buffers = {n: b.clone() for n, b in supernet.named_buffers()}
    active = supernet.sample_arch_step("full_v2", torch.Generator().manual_seed(0))
    loss = nn.functional.cross_entropy(supernet(images()), torch.tensor([0, 1, 2, 3]))
    loss.backward(inputs=supernet.arch_parameters())
    for name, value in supernet.named_buffers():
        parts = name.split(".")
        used = True
        if "candidates" in parts:
            layer = int(parts[1]) - 1
            used = supernet.mixed_ops[layer].names[active[layer]] == parts[3]
        assert torch.equal(value, buffers[name]) != used, name


@pytest.mark.parametrize("mixed_op", ["darts", "gumbel"])
def test_weighted_baselines_sum_every_candidate(mixed_op):
    supernet = tiny_supernet(mixed_op)
    mixed = supernet.mixed_ops[2]
    supernet.sample_arch_step("full", torch.Generator().manual_seed(0))
    weights = mixed.state[1]
    assert torch.allclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    if mixed_op == "darts":
        assert torch.allclose(weights, torch.softmax(mixed.alpha, 0))
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64)
    explicit = x + sum(weights[k] * copy.deepcopy(mixed.body(k))(x)
                       for k in range(mixed.num_candidates) if mixed.body(k) is not None)
    assert torch.allclose(mixed(x), explicit)
    supernet(images()).sum().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in supernet.arch_parameters())
    supernet.zero_grad(set_to_none=True)
    supernet.sample_weight_step(torch.Generator().manual_seed(0))
    supernet(images()).sum().backward()
    assert all(a.grad is None for a in supernet.arch_parameters())


def test_mixed_op_rejects_zero_without_shortcut():
    with pytest.raises(ProxylessError, match="shortcut"):
        MixedOp([("a", nn.Identity()), ("zero", None)], shortcut=False)
