import itertools
import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from proxylessnas import build_net
from proxylessnas.cli import main
from proxylessnas.errors import ProxylessError
from proxylessnas.nets import GraphNet, count_params_macs
from proxylessnas.ops.cell_blocks import ResBlock
from proxylessnas.space import Arch, GraphSpace, get_space, load_arch_or_string
from proxylessnas.space.nasbench201 import (
    CANDIDATES,
    DECISION_LABELS,
    arch_from_string,
    arch_to_string,
    format_string,
    parse_string,
)
from proxylessnas.space.presets import space_names

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
OPS = CANDIDATES.split(",")


def uniform(op: str) -> str:
    return format_string([op] * 6)


# (params, MACs in millions rounded to 0.01) at 32x32, 10 classes
SIZES = {
    "nor_conv_3x3": (1_531_546, 220.12),
    "nor_conv_1x1": (241_306, 31.38),
    "skip_connect": (73_306, 7.78),
    "none": (73_306, 7.78),
}


@pytest.fixture(scope="module")
def space() -> GraphSpace:
    return get_space("nasbench201")


def test_space_structure(space):
    assert "nasbench201" in space_names()
    assert [d.label for d in space.decisions] == list(DECISION_LABELS) == [
        "1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert [op.token for op in space.decisions[0].candidates] == OPS
    assert len(space.edges) == 93 and len(space.searched_edges) == 90
    assert all(len(space.edges_of(label)) == 15 for label in DECISION_LABELS)
    assert space.num_candidate_slots == 30 and space.num_architectures == 5 ** 6
    fixed = [(e.label, e.op.token, e.stride) for e in space.edges if e.op is not None]
    assert fixed == [("stem", "conv_bn_3x3", 1), ("s2.reduce", "res_block_3x3", 2),
                     ("s3.reduce", "res_block_3x3", 2)]
    shapes = space.infer_shapes()
    assert str(shapes[-1].input) == "8x8x64" and str(shapes[-1].output) == "1x1x10"
    assert space.edge("s2.c0.3<-1").src == "s2.c0.n1" and space.edge("s2.c0.1<-0").src == "s2.in"


def test_space_overrides():
    small = get_space("nasbench201", channels=8, cells_per_stage=1, num_classes=100,
                      candidates="none,nor_conv_3x3")
    assert len(small.edges) == 1 + 2 + 3 * 6 and small.num_architectures == 2 ** 6
    assert small.head.in_chs == 32 and small.num_classes == 100
    assert small.overrides["channels"] == 8
    with pytest.raises(ProxylessError, match="not cell ops"):
        get_space("nasbench201", candidates="mb_k3_e3,none")
    with pytest.raises(ProxylessError, match="unknown override"):
        get_space("nasbench201", width_mult=2)
    with pytest.raises(ProxylessError, match="even input side"):
        get_space("nasbench201", resolution=30)


def test_to_dict_round_trip(space):
    data = json.loads(json.dumps(space.to_dict()))
    assert GraphSpace.from_dict(data) == space


@pytest.mark.parametrize("op", list(SIZES))
def test_exact_params_and_macs(space, op):
    net = build_net(space, arch_from_string(uniform(op))).eval()
    params, macs = count_params_macs(net.net_config)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    want_params, want_macs = SIZES[op]
    assert sum(p.numel() for p in net.parameters()) == params == want_params
    assert counter.get_total_flops() == 2 * macs
    assert round(macs / 1e6, 2) == want_macs


def test_forward_shape_and_example(space):
    net = build_net(space, arch_from_string(EXAMPLE))
    assert isinstance(net, GraphNet) and net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # edge i's module is net.edges[i]; zero edges have none
    arch = arch_from_string("|none~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|")
    net = build_net(space, arch)
    ops = space.edge_ops(arch.choices)
    assert len(net.edges) == len(space.edges) == len(ops)
    assert [m is None for m in net.edges] == [op.is_zero for op in ops]
    assert sum(m is None for m in net.edges) == 45
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_benchmark_module_details(space):
    net = build_net(space, arch_from_string(uniform("nor_conv_3x3")))
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert all(b.affine and b.track_running_stats and b.eps == 1e-5
               for b in net.modules() if isinstance(b, nn.BatchNorm2d))
    assert all(not r.inplace for r in net.modules() if isinstance(r, nn.ReLU))
    reduce = net.edges[space.edges.index(space.edge("s2.reduce"))]
    assert isinstance(reduce, ResBlock)
    pool, conv = reduce.shortcut
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2 and pool.stride == 2
    assert conv.kernel_size == (1, 1) and conv.bias is None
    pooled = build_net(space, arch_from_string(uniform("avg_pool_3x3")))
    pools = [m for m in pooled.edges if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 90 and all(not p.count_include_pad and p.padding == 1 for p in pools)


def test_all_none_cells_output_zeros(space):
    net = build_net(space, arch_from_string(uniform("none"))).eval()
    assert all(m is None for e, m in zip(space.edges, net.edges) if e.decision is not None)
    assert torch.equal(net.forward_features(torch.randn(2, 3, 32, 32)), torch.zeros(2, 64, 8, 8))


def test_string_round_trip_all_cells(space):
    count = 0
    for ops in itertools.product(OPS, repeat=6):
        text = format_string(ops)
        assert arch_to_string(arch_from_string(text, space)) == text
        count += 1
    assert count == 15_625


def test_string_order_and_arch():
    arch = arch_from_string(EXAMPLE)
    assert [arch.choices[label].token for label in DECISION_LABELS] == [
        "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1"]
    assert arch.space == "nasbench201" and arch.schema_version == 2
    # inputs of a node may be listed in any order; the output is canonical
    shuffled = ("|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~0|"
                "+|nor_conv_1x1~2|skip_connect~0|nor_conv_3x3~1|")
    assert arch_to_string(arch_from_string(shuffled)) == EXAMPLE
    assert load_arch_or_string(EXAMPLE) == arch == load_arch_or_string(f"  {EXAMPLE}\n")


def test_arch_file_round_trip(tmp_path):
    arch = arch_from_string(EXAMPLE)
    arch.save(tmp_path / "nb.json")
    data = json.loads((tmp_path / "nb.json").read_text())
    assert data["schema_version"] == 2 and data["choices"]["3<-0"] == "skip_connect"
    loaded = Arch.load(tmp_path / "nb.json")
    assert loaded == arch and isinstance(loaded.resolve_space(), GraphSpace)
    assert load_arch_or_string(str(tmp_path / "nb.json")) == arch


@pytest.mark.parametrize("text", [
    "", "|nor_conv_3x3~0|", "|nor_conv_3x3~0|+|none~0|none~1|",
    "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|",
    "nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|none~0|none~0|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|",
    "|nor_conv_3x3|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~x|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0||+|none~0|none~1|+|none~0|none~1|none~2|",
])
def test_malformed_strings(text):
    with pytest.raises(ProxylessError, match="malformed NAS-Bench-201 string"):
        parse_string(text)


@pytest.mark.parametrize("text, needle", [
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
    ("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "not a candidate of decision 1<-0"),
    ("|mb_k3_e3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "not a candidate"),
])
def test_unknown_tokens(text, needle):
    with pytest.raises(ProxylessError, match=needle):
        arch_from_string(text)


def test_arch_to_string_needs_a_cell_arch():
    tiny = get_space("tiny")
    with pytest.raises(ProxylessError, match="no op for cell edge"):
        arch_to_string(Arch.from_ops(tiny, ["mb_k3_e3", "zero", "mb_k5_e1", "mb_k3_e1"]))


def test_space_cli(capsys):
    assert main(["space", "list"]) == 0
    out = capsys.readouterr().out
    assert "nasbench201" in out and "1.56e+04" in out
    assert main(["space", "show", "nasbench201", "--edges"]) == 0
    out = capsys.readouterr().out
    for needle in ("res_block_3x3", "3<-2", "avg_pool_3x3", "8x8x64", "s3.c4.3<-2", "15,625"):
        assert needle in out


def test_train_target_from_string():
    from proxylessnas.train.target import build_target, target_name

    net, description = build_target(EXAMPLE, 10, 32)
    assert isinstance(net, GraphNet) and description["string"] == EXAMPLE
    assert net.net_config.name == target_name(EXAMPLE) and target_name(EXAMPLE).startswith("nb201-")
    with pytest.raises(ProxylessError, match="neither a zoo name nor a file"):
        build_target("nope.json", 10, 32)
