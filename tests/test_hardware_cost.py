import itertools
import math
import random

import pytest
import torch

from proxylessnas import Arch, get_space
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.cost import CostModel, FlopsCostModel, TableCostModel
from proxylessnas.hardware.keys import arch_keys, space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.nets import build_net


def synthetic_table(space, seed=0, drop=()):
    rng = random.Random(seed)
    entries = {}
    for key in space_keys(space).unique():
        if str(key) in drop:
            continue
        value = rng.uniform(0.1, 2.0)
        entries[str(key)] = LatencyStats(value, value, 0.0, value, value, 10)
    return LatencyTable(TableTarget.of(space), {"device": "synthetic"}, entries)


def test_protocol_is_satisfied():
    space = get_space("tiny")
    assert isinstance(TableCostModel(synthetic_table(space)), CostModel)
    assert isinstance(FlopsCostModel(), CostModel)


def test_arch_cost_is_the_sum_of_its_keys_including_fixed_parts():
    space = get_space("tiny")
    table = synthetic_table(space)
    model = TableCostModel(table)
    arch = Arch.from_ops(space, [l.candidates[0] for l in space.searched_layers])
    expected = sum(table.entries[str(k)].median for k in arch_keys(space, arch))
    assert model.arch_cost(space, arch) == pytest.approx(expected, rel=1e-12)
    fixed, vectors = model.candidate_costs(space)
    assert fixed == pytest.approx(sum(table.entries[str(k)].median for k in space_keys(space).fixed))
    for layer, vector in zip(space.searched_layers, vectors):
        for op, value in zip(layer.candidates, vector):
            assert (value == 0) == op.is_zero


def test_expected_cost_matches_brute_force_over_all_archs():
    space = get_space("tiny")
    model = TableCostModel(synthetic_table(space, seed=3))
    gen = torch.Generator().manual_seed(0)
    probs = [torch.softmax(torch.randn(len(l.candidates), generator=gen, dtype=torch.float64), 0)
             for l in space.searched_layers]
    brute = 0.0
    for combo in itertools.product(*(range(len(l.candidates)) for l in space.searched_layers)):
        weight = math.prod(float(p[i]) for p, i in zip(probs, combo))
        arch = Arch.from_ops(space, [l.candidates[i] for l, i in zip(space.searched_layers, combo)])
        brute += weight * model.arch_cost(space, arch)
    assert space.num_architectures == 500
    assert float(model.expected_cost(space, probs)) == pytest.approx(brute, rel=1e-10)


def test_expected_cost_gradient_is_the_candidate_cost_vector():
    space = get_space("tiny")
    model = TableCostModel(synthetic_table(space, seed=1))
    probs = [torch.full((len(l.candidates),), 1 / len(l.candidates), dtype=torch.float64, requires_grad=True)
             for l in space.searched_layers]
    model.expected_cost(space, probs).backward()
    _, vectors = model.candidate_costs(space)
    for p, c in zip(probs, vectors):
        assert torch.allclose(p.grad, c)


def test_one_hot_probs_give_the_arch_cost():
    space = get_space("proxyless-cifar")
    model = FlopsCostModel()
    rng = random.Random(2)
    choice = [rng.randrange(len(l.candidates)) for l in space.searched_layers]
    probs = [torch.nn.functional.one_hot(torch.tensor(i), len(l.candidates)).float()
             for i, l in zip(choice, space.searched_layers)]
    arch = Arch.from_ops(space, [l.candidates[i] for l, i in zip(space.searched_layers, choice)])
    assert float(model.expected_cost(space, probs)) == pytest.approx(model.arch_cost(space, arch), rel=1e-5)


def test_flops_model_matches_torch_parameter_count():
    space = get_space("tiny")
    arch = Arch.from_ops(space, [l.candidates[1] for l in space.searched_layers])
    params = sum(p.numel() for p in build_net(space, arch).parameters())
    assert FlopsCostModel("params").arch_cost(space, arch) == pytest.approx(params / 1e6)


def test_missing_keys_are_listed_never_defaulted():
    space = get_space("tiny")
    keys = space_keys(space).unique()
    table = synthetic_table(space, drop={str(keys[2]), str(keys[5])})
    model = TableCostModel(table)
    with pytest.raises(ProxylessError) as err:
        model.candidate_costs(space)
    assert "2 key(s)" in err.value.what and str(keys[2]) in err.value.what


def test_table_for_another_target_is_refused():
    tiny = get_space("tiny")
    model = TableCostModel(synthetic_table(tiny))
    with pytest.raises(ProxylessError, match="resolution"):
        model.candidate_costs(get_space("tiny", resolution=32))
    with pytest.raises(ProxylessError, match="space"):
        model.candidate_costs(get_space("proxyless-cifar"))
    with pytest.raises(ProxylessError, match="batch size"):
        TableCostModel(synthetic_table(tiny), batch_size=8).candidate_costs(tiny)
