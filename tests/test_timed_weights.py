"""Timed nets carry trained-like BatchNorm values: fresh BatchNorm folds into zero biases, which some
runtimes drop (a faster graph than any deployed, trained net); tables timed before are rebuilt."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from proxylessnas import Arch, build_net, get_space
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.measure import Backend, prepare_runner
from proxylessnas.hardware.targets import cached_table_path, get_table
from proxylessnas.hardware.timed_weights import TIMED_BATCHNORM, at_initial_values, trained_like_batchnorm


def batchnorms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def fresh_net() -> nn.Module:
    space = get_space("tiny")
    arch = Arch.from_ops(space, [layer.candidates[0] for layer in space.searched_layers])
    return build_net(space, arch).eval()


def test_a_fresh_net_is_timed_as_a_copy_with_trained_like_batchnorm_and_is_not_changed():
    net = fresh_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    timed = trained_like_batchnorm(net)
    assert timed is not net
    assert all(at_initial_values(bn) for bn in batchnorms(net))
    assert not any(at_initial_values(bn) for bn in batchnorms(timed))
    for bn in batchnorms(timed):
        assert torch.all((bn.weight >= 0.5) & (bn.weight <= 1.5)) and torch.all(bn.running_var >= 0.5)
        assert torch.all(bn.bias != 0) and torch.all(bn.running_mean != 0)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    again = trained_like_batchnorm(net)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in timed.state_dict().items())
    other_seed = trained_like_batchnorm(net, seed=1)
    assert not torch.equal(batchnorms(other_seed)[0].bias, batchnorms(timed)[0].bias)


def test_a_trained_net_is_timed_as_it_is():
    net = fresh_net()
    with torch.no_grad():
        for bn in batchnorms(net):
            bn.bias.fill_(0.25)
    assert trained_like_batchnorm(net) is net
    # only the layers still at their initial values change: the rest keep their trained values
    with torch.no_grad():
        batchnorms(net)[0].bias.zero_()
    timed = trained_like_batchnorm(net)
    assert not at_initial_values(batchnorms(timed)[0])
    assert all(torch.all(bn.bias == 0.25) for bn in batchnorms(timed)[1:])


def test_the_torch_runner_computes_with_the_trained_like_copy():
    net = fresh_net()
    x = torch.randn(1, 3, get_space("tiny").resolution, get_space("tiny").resolution,
                    generator=torch.Generator().manual_seed(0))
    out = prepare_runner(net, tuple(x.shape), Backend("torch"))._call()
    with torch.inference_mode():
        assert torch.allclose(out, trained_like_batchnorm(net)(x))
        assert not torch.allclose(out, net(x))
    assert Backend("torch").provenance()["timed_batchnorm"] == TIMED_BATCHNORM


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROXYLESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_cached_table_timed_with_fresh_batchnorm_is_measured_again(cache, monkeypatch):
    from proxylessnas.hardware import build

    quick = build.build_lut
    monkeypatch.setattr(build, "build_lut", lambda *a, **k: quick(*a, **k, seconds_per_key=0.002,
                                                                  min_samples=4, rounds=2))
    space = get_space("tiny")
    backend = Backend("torch")
    provenance = {k: v for k, v in backend.provenance().items() if k != "timed_batchnorm"}
    entries = {str(k): LatencyStats.from_samples([1000.0]) for k in space_keys(space).unique()}
    path = cached_table_path(space, backend)
    LatencyTable(TableTarget.of(space, batch_size=1), provenance, entries).save(path)
    with pytest.raises(ProxylessError, match="fresh BatchNorm"):
        get_table("cpu", space, build=False)
    table = get_table("cpu", space, progress=False)
    assert table.provenance["timed_batchnorm"] == TIMED_BATCHNORM
    assert all(stats.median < 1000.0 for stats in table.entries.values())
    assert LatencyTable.load(path).provenance["timed_batchnorm"] == TIMED_BATCHNORM
