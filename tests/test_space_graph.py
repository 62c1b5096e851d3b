import json

import pytest
import torch
from torch import nn

from proxylessnas import build_net
from proxylessnas.errors import ProxylessError
from proxylessnas.nets import GraphNet, count_params_macs, net_from_config, profile_net
from proxylessnas.space import (
    NONE,
    SKIP,
    Arch,
    ConvBNOp,
    Decision,
    Edge,
    GraphHead,
    GraphSpace,
    ReLUConvBNOp,
    format_op,
    get_space,
    infer_shapes,
    load_arch_or_string,
    parse_op,
    space_from_dict,
)
from proxylessnas.space.shapes import Shape

CELL_OPS = (NONE, SKIP, ReLUConvBNOp(3))


def small_space(**changes) -> GraphSpace:
    """input -conv-> a; a -x-> b; a -y-> c; b -x-> c (decision x shared by two edges)."""
    fields = dict(
        name="small", resolution=8, in_chs=3, nodes=("input", "a", "b", "c"),
        edges=(Edge("stem", "input", "a", 3, 4, 1, op=ConvBNOp(3)),
               Edge("a->b", "a", "b", 4, 4, 1, decision="x"),
               Edge("a->c", "a", "c", 4, 4, 1, decision="y"),
               Edge("b->c", "b", "c", 4, 4, 1, decision="x")),
        all_decisions=(Decision("x", CELL_OPS), Decision("y", CELL_OPS)),
        output="c", head=GraphHead(4, 2))
    fields.update(changes)
    return GraphSpace(**fields)


@pytest.mark.parametrize("token", ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_7x7",
                                   "avg_pool_3x3", "conv_bn_3x3", "res_block_3x3", "zero", "mb_k5_e6"])
def test_tokens_round_trip(token):
    op = parse_op(token)
    assert format_op(op) == token and str(op) == token
    assert op.is_zero == (token in ("none", "zero"))


@pytest.mark.parametrize("text, needle", [("nor_conv_3x5", "non-square"), ("nor_conv_2x2", "2"),
                                          ("avg_pool", "avg_pool"), ("skip", "skip")])
def test_bad_cell_tokens(text, needle):
    with pytest.raises(ProxylessError) as err:
        parse_op(text)
    assert needle in str(err.value)


def test_decisions_and_counts():
    space = small_space()
    assert space.decisions == space.searched_layers == space.all_decisions
    assert [d.label for d in space.decisions] == ["x", "y"]
    assert space.num_candidate_slots == 6 and space.num_architectures == 9
    assert [e.label for e in space.edges_of("x")] == ["a->b", "b->c"]
    assert space.edge_indices_of("x") == (1, 3)
    assert space.decision("y").index(SKIP) == 1
    with pytest.raises(ProxylessError, match="not a candidate"):
        space.decision("y").index(ReLUConvBNOp(1))
    with pytest.raises(ProxylessError, match="no decision 'z'"):
        space.decision("z")


def test_fixed_decision_is_not_searched():
    space = small_space(all_decisions=(Decision("x", CELL_OPS), Decision("y", (SKIP,))))
    assert [d.label for d in space.decisions] == ["x"]
    arch = Arch.from_ops(space, ["nor_conv_3x3"])
    assert arch.ops(space) == [ReLUConvBNOp(3), SKIP]
    assert space.edge_ops(arch.choices)[2] == SKIP


def test_chain_decisions_are_its_searched_layers():
    space = get_space("tiny")
    assert space.decisions == space.searched_layers


def test_shapes_per_edge_then_head():
    space = small_space(edges=(Edge("stem", "input", "a", 3, 4, 2, op=ConvBNOp(3)),
                               *small_space().edges[1:]))
    shapes = infer_shapes(space)  # the module-level function dispatches on the space kind
    assert shapes == space.infer_shapes()
    assert [s.label for s in shapes] == [e.label for e in space.edges] + ["head"]
    assert shapes[0].input == Shape(8, 8, 3) and shapes[0].output == Shape(4, 4, 4)
    assert shapes[-1].output == Shape(1, 1, 2) and shapes[1].kind == "searched"
    assert space.infer_shapes(16)[0].output == Shape(8, 8, 4)


@pytest.mark.parametrize("changes, message", [
    ({"edges": (Edge("b->c", "b", "c", 4, 4, 1, decision="x"),
                Edge("stem", "input", "a", 3, 4, 1, op=ConvBNOp(3)))}, "expects 4 input channels"),
    ({"nodes": ("input", "c", "b", "a")}, "backwards"),
    ({"output": "input"}, "output node"),
    ({"head": GraphHead(5, 2)}, "head expects 5"),
    ({"all_decisions": (Decision("x", CELL_OPS),)}, "unknown decision 'y'"),
    ({"all_decisions": (Decision("x", CELL_OPS), Decision("y", CELL_OPS), Decision("w", CELL_OPS))},
     "used by no edge"),
    ({"nodes": ("input", "a", "b", "c", "d")}, "without incoming edges"),
])
def test_invalid_graphs(changes, message):
    with pytest.raises(ProxylessError, match=message):
        small_space(**changes)


def test_invalid_edges():
    with pytest.raises(ProxylessError, match="either a fixed op or a decision"):
        Edge("e", "a", "b", 4, 4, 1)
    with pytest.raises(ProxylessError, match="either a fixed op or a decision"):
        Edge("e", "a", "b", 4, 4, 1, op=SKIP, decision="x")
    with pytest.raises(ProxylessError, match="skip_connect' needs stride 1"):
        Edge("e", "a", "b", 4, 8, 1, op=SKIP)
    with pytest.raises(ProxylessError, match="skip_connect' needs stride 1"):  # a candidate of a decision
        small_space(edges=(Edge("stem", "input", "a", 3, 4, 1, op=ConvBNOp(3)),
                           Edge("a->b", "a", "b", 4, 4, 2, decision="x"),
                           Edge("a->c", "a", "c", 4, 4, 1, decision="y"),
                           Edge("b->c", "b", "c", 4, 4, 1, decision="x")))


def test_to_dict_round_trip():
    space = small_space()
    data = json.loads(json.dumps(space.to_dict()))
    assert GraphSpace.from_dict(data) == space and space_from_dict(data) == space
    chain = get_space("tiny")
    assert space_from_dict(chain.to_dict()) == chain
    with pytest.raises(ProxylessError, match="schema_version"):
        GraphSpace.from_dict({**data, "schema_version": 9})
    with pytest.raises(ProxylessError, match="malformed graph space"):
        GraphSpace.from_dict({k: v for k, v in data.items() if k != "edges"})


def test_arch_for_graph_space(tmp_path):
    space = small_space()
    arch = Arch.from_ops(space, ["nor_conv_3x3", "skip_connect"])
    assert arch.indices(space) == [2, 1] and arch.op(space, "y") == SKIP
    arch.save(tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text())["schema_version"] == 2
    assert Arch.load(tmp_path / "a.json", space) == arch
    with pytest.raises(ProxylessError, match="unknown decision label"):
        Arch(space.name, {**arch.choices, "q": SKIP}).validate(space)
    with pytest.raises(ProxylessError, match="no op chosen for decision"):
        Arch(space.name, {"x": SKIP}).validate(space)
    with pytest.raises(ProxylessError, match="1 ops for 2 searched decisions"):
        Arch.from_ops(space, ["none"])


def test_arch_version_1_files_load_and_save_as_2(tmp_path):
    space = get_space("tiny")
    arch = Arch.from_ops(space, ["mb_k3_e3", "zero", "mb_k5_e1", "mb_k3_e1"])
    old = {**arch.to_dict(), "schema_version": 1}
    (tmp_path / "v1.json").write_text(json.dumps(old))
    loaded = Arch.load(tmp_path / "v1.json")
    assert loaded == arch and loaded.schema_version == 2
    loaded.save(tmp_path / "v2.json")
    assert json.loads((tmp_path / "v2.json").read_text()) == {**old, "schema_version": 2}
    assert load_arch_or_string(str(tmp_path / "v1.json")) == arch
    with pytest.raises(ProxylessError, match="arch file not found"):
        load_arch_or_string(str(tmp_path / "missing.json"))


def test_graph_net_sums_nodes_and_zero_nodes():
    space = small_space()
    # x = skip on a->b and b->c, y = none: c = b = a
    net = build_net(space, Arch.from_ops(space, ["skip_connect", "none"])).eval()
    assert isinstance(net, GraphNet) and net.edges[2] is None  # a->c is zero: no module
    assert [type(m).__name__ if m is not None else None for m in net.edges] == [
        "ConvBN", "Identity", None, "Identity"]
    x = torch.randn(2, 3, 8, 8)
    a = net.edges[0](x)
    assert torch.equal(net.forward_features(x), a)
    # x = skip, y = skip: c = a + b = 2a
    net2 = build_net(space, Arch.from_ops(space, ["skip_connect", "skip_connect"])).eval()
    net2.load_state_dict(net.state_dict())
    assert torch.allclose(net2.forward_features(x), 2 * a)
    # x = none: b has only zero inputs and is zeros; c = y(a) + x(b) = a
    net3 = build_net(space, Arch.from_ops(space, ["none", "skip_connect"])).eval()
    net3.load_state_dict(net.state_dict())
    assert torch.equal(net3.forward_features(x), a)
    net4 = build_net(space, Arch.from_ops(space, ["none", "none"])).eval()
    assert torch.equal(net4.forward_features(x), torch.zeros(2, 4, 8, 8))
    assert net4(x).shape == (2, 2)


def test_relu_is_not_in_place_on_shared_nodes():
    space = small_space()
    net = build_net(space, Arch.from_ops(space, ["nor_conv_3x3", "skip_connect"])).eval()
    assert all(not m.inplace for m in net.modules() if isinstance(m, nn.ReLU))
    x = torch.randn(1, 3, 8, 8)
    a = net.edges[0](x)
    want = a + net.edges[3](net.edges[1](a))  # c = y(a) + x(b), b = x(a)
    assert torch.allclose(net.forward_features(x), want, atol=1e-6)


def test_config_round_trip_and_profile():
    torch.manual_seed(0)
    space = small_space()
    net = build_net(space, Arch.from_ops(space, ["nor_conv_3x3", "skip_connect"]), num_classes=3,
                    name="n").eval()
    config = json.loads(json.dumps(net.config()))
    rebuilt = net_from_config(config).eval()
    assert isinstance(rebuilt, GraphNet) and rebuilt.net_config == net.net_config
    assert list(rebuilt.state_dict()) == list(net.state_dict())
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(rebuilt(x), net(x)) and net(x).shape == (2, 3)
    rows = profile_net(net.net_config)
    assert [r.params for r in rows[:-1]] == [
        0 if m is None else sum(p.numel() for p in m.parameters()) for m in net.edges]
    assert count_params_macs(net.net_config)[0] == sum(p.numel() for p in net.parameters())
    with pytest.raises(ProxylessError, match="unknown net config kind"):
        net_from_config({"kind": "nope"})
