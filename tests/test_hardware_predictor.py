import random

import numpy as np
import pytest
import torch

from proxylessnas import Arch, get_space
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.cost import TableCostModel
from proxylessnas.hardware.flops import key_params_macs
from proxylessnas.hardware.keys import arch_keys
from proxylessnas.hardware.predictor import (
    LatencyPredictor,
    PredictedCostModel,
    fit_predictor,
    key_group,
)
from test_hardware_cost import synthetic_table


def truth(table, keys):
    """A made-up 'device': per-block overhead, a stage-dependent slowdown and a cache term."""
    total = 0.3
    for k in keys:
        value = table.lookup(k)
        if k.kind == "mbconv":
            params, macs = key_params_macs(k)
            scale = {"16": 0.2, "8": -0.1}[key_group(k)]
            value += scale * value + 0.05 + 2.0 * params / 1e6
        total += value
    return total


def sample(space, n, seed):
    rng = random.Random(seed)
    return [Arch.from_ops(space, [rng.choice(l.candidates) for l in space.searched_layers]) for _ in range(n)]


def test_fit_recovers_a_linear_device():
    space = get_space("tiny")
    table = synthetic_table(space, seed=4)
    train = sample(space, 200, 0)
    keys = [arch_keys(space, a) for a in train]
    predictor = fit_predictor(table, keys, [truth(table, k) for k in keys], ridge=1e-8)
    table.predictor = predictor.to_dict()
    model = PredictedCostModel(table)
    lut = TableCostModel(table)
    errors, lut_errors = [], []
    for arch in sample(space, 50, 1):
        y = truth(table, arch_keys(space, arch))
        errors.append(abs(model.arch_cost(space, arch) - y) / y)
        lut_errors.append(abs(lut.arch_cost(space, arch) - y) / y)
    assert max(errors) < 1e-6
    assert np.mean(lut_errors) > 0.02  # the correction matters


def test_expected_cost_of_the_predictor_is_exact_and_differentiable():
    space = get_space("tiny")
    table = synthetic_table(space, seed=5)
    archs = sample(space, 30, 2)
    keys = [arch_keys(space, a) for a in archs]
    model = PredictedCostModel(table, fit_predictor(table, keys, [truth(table, k) for k in keys]))
    arch = archs[0]
    probs = [torch.nn.functional.one_hot(torch.tensor(i), len(l.candidates)).double().requires_grad_()
             for i, l in zip(arch.indices(space), space.searched_layers)]
    cost = model.expected_cost(space, probs)
    assert float(cost.detach()) == pytest.approx(model.arch_cost(space, arch), rel=1e-10)
    cost.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in probs)
    _, vectors = model.candidate_costs(space)
    for layer, v in zip(space.searched_layers, vectors):
        assert all((c == 0) == op.is_zero for c, op in zip(v, layer.candidates))


def test_ridge_pulls_towards_the_table_sum():
    space = get_space("tiny")
    table = synthetic_table(space, seed=6)
    archs = sample(space, 5, 3)
    keys = [arch_keys(space, a) for a in archs]
    strong = fit_predictor(table, keys, [truth(table, k) for k in keys], ridge=1e6)
    assert all(abs(c) < 1e-3 for v in strong.groups.values() for c in v)


def test_round_trip_and_errors():
    predictor = LatencyPredictor({"8": (0.1, 0.2, 0.3, 0.4)}, 1.5, {"n": 3})
    assert LatencyPredictor.from_dict(predictor.to_dict()) == predictor
    with pytest.raises(ProxylessError):
        LatencyPredictor.from_dict({"kind": "boosted"})
    space = get_space("tiny")
    with pytest.raises(ProxylessError, match="no fitted predictor"):
        PredictedCostModel(synthetic_table(space))
    with pytest.raises(ProxylessError, match="at least 3"):
        fit_predictor(synthetic_table(space), [], [])
