"""Latency tables and cost models of graph spaces (NAS-Bench-201): keys, build, table model, CLI."""

import itertools
import json
import math
import random

import pytest
import torch

from proxylessnas import Arch, get_space
from proxylessnas.cli import main
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.build import build_lut
from proxylessnas.hardware.cost import TableCostModel
from proxylessnas.hardware.flops import key_params_macs
from proxylessnas.hardware.graph_cost import GraphFlopsCostModel
from proxylessnas.hardware.keys import GraphSpaceKeys, LayerKey, arch_keys, edge_key, space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.measure import Backend, build_block, key_input_shape
from proxylessnas.hardware.targets import backend_for, cached_table_path, get_cost_model
from proxylessnas.hardware.validate import fit_and_validate, table_models, validate_models
from proxylessnas.nets import build_net, count_params_macs, graph_net_config
from proxylessnas.space.graph import Decision, Edge, GraphHead, GraphSpace
from proxylessnas.space.nasbench201 import format_string
from proxylessnas.space.ops import AvgPoolOp, ConvBNOp, ReLUConvBNOp, ResBlockOp, parse_ops

FAST = {"seconds_per_key": 0.002, "min_samples": 4, "rounds": 2, "progress": False}
TINY = {"channels": 4, "cells_per_stage": 1, "resolution": 8, "num_classes": 3}


def tiny_space():
    return get_space("nasbench201", **TINY)


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    """A torch-CPU table of the tiny NAS-Bench-201 skeleton (few runs per key)."""
    path = tmp_path_factory.mktemp("lut") / "nb201.json"
    table = build_lut(tiny_space(), Backend(), path, **FAST)
    return path, table


def synthetic_table(space, seed=0, drop=()):
    rng = random.Random(seed)
    entries = {}
    for key in space_keys(space).unique():
        if str(key) not in drop:
            value = rng.uniform(0.1, 2.0)
            entries[str(key)] = LatencyStats(value, value, 0.0, value, value, 10)
    return LatencyTable(TableTarget.of(space), {"device": "synthetic"}, entries)


def all_archs(space):
    decisions = space.decisions
    for combo in itertools.product(*(range(len(d.candidates)) for d in decisions)):
        yield combo, {d.label: d.candidates[i] for d, i in zip(decisions, combo)}


def edge_sum_cost(space, table, choices, edge_prices):
    """Cost of one arch, summed edge by edge (independent of the per-decision aggregation)."""
    total = 0.0
    for index, op in enumerate(space.edge_ops(choices)):
        total += edge_prices[index, op]
    return total


def edge_price_table(space, table):
    nodes = space.node_shapes()
    prices = {}
    for index, edge in enumerate(space.edges):
        ops = (edge.op,) if edge.op is not None else space.decision(edge.decision).candidates
        for op in ops:
            key = edge_key(op, edge, nodes[edge.src], nodes[edge.dst])
            prices[index, op] = 0.0 if key is None else table.lookup(key)
    return prices


def head_price(space, table):
    shape = space.node_shapes()[space.output]
    key = LayerKey("pool_head", (shape.height, shape.width, shape.channels), (1, 1, space.num_classes))
    return table.lookup(key)


def hand_space():
    """Two decisions with different edge sets and shapes: A on a 8x8 and a 4x4 edge, B on a
    stride-2 edge (3 candidates), plus a fixed stem and a fixed res_block shortcut."""
    cell = parse_ops("none,skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3")
    decisions = (Decision("A", cell), Decision("B", (ReLUConvBNOp(3), AvgPoolOp(3), cell[0])))
    edges = (
        Edge("stem", "input", "stem", 3, 4, 1, op=ConvBNOp(3)),
        Edge("e1", "stem", "n1", 4, 4, 1, decision="A"),
        Edge("e2", "n1", "n2", 4, 4, 2, decision="B"),
        Edge("e3", "stem", "n2", 4, 4, 2, op=ResBlockOp(3)),
        Edge("e4", "n2", "n3", 4, 4, 1, decision="A"),
    )
    return GraphSpace("hand", 8, 3, ("input", "stem", "n1", "n2", "n3"), edges, decisions, "n3",
                      GraphHead(4, 3), overrides={})


# -- keys --------------------------------------------------------------------------------------
def test_graph_keys_round_trip_and_share_cells():
    space = get_space("nasbench201")
    keys = space_keys(space)
    assert isinstance(keys, GraphSpaceKeys)
    unique = keys.unique()
    # stem, 2 reductions, head, and per stage nor_conv 1x1 / 3x3, avg_pool, skip
    assert len(unique) == 4 + 3 * 4
    assert {k.kind for k in unique} == {"conv_bn", "res_block", "nor_conv", "avg_pool", "skip", "pool_head"}
    for key in unique:
        assert LayerKey.parse(str(key)) == key
    assert str(keys.fixed[0]) == "conv_bn-input:32x32x3-output:32x32x16-kernel:3-expand:1-stride:1-residual:0"
    assert str(keys.fixed[1]) == ("res_block-input:32x32x16-output:16x16x32-kernel:3-expand:1-stride:2"
                                  "-residual:0")
    assert str(keys.fixed[-1]) == "pool_head-input:8x8x64-output:1x1x10-kernel:1-expand:1-stride:1-residual:0"
    assert len(keys.fixed) == 4
    for decision, per_candidate in zip(space.decisions, keys.searched):
        assert len(space.edges_of(decision.label)) == 15
        for op, cand in zip(decision.candidates, per_candidate):
            assert len(cand) == (0 if op.is_zero else 15)
    skip = keys.searched[0][1]
    assert str(skip[0]) == "skip-input:32x32x16-output:32x32x16-kernel:1-expand:1-stride:1-residual:0"
    assert len(set(skip)) == 3  # 15 edges, one key per stage


def test_chain_key_strings_are_unchanged():
    keys = space_keys(get_space("proxyless-cifar"))
    assert str(keys.fixed[0]) == "stem-input:32x32x3-output:32x32x32-kernel:3-expand:1-stride:1-residual:0"
    assert str(keys.fixed[-1]) == ("classifier-input:4x4x1280-output:1x1x10-kernel:1-expand:1-stride:1"
                                   "-residual:0")
    assert str(LayerKey("mbconv", (32, 32, 24), (16, 16, 40), 5, 6, 2, False)) == \
        "mbconv-input:32x32x24-output:16x16x40-kernel:5-expand:6-stride:2-residual:0"


def test_arch_keys_and_macs_follow_the_graph_net():
    space = tiny_space()
    rng = random.Random(0)
    for _ in range(5):
        arch = Arch.from_ops(space, [rng.choice(d.candidates) for d in space.decisions])
        keys = arch_keys(space, arch)
        nonzero = sum(not op.is_zero for op in space.edge_ops(arch.choices))
        assert len(keys) == nonzero + 1 and keys[-1].kind == "pool_head"
        params, macs = count_params_macs(graph_net_config(space, arch))
        assert sum(key_params_macs(k)[1] for k in keys) == macs
        assert sum(key_params_macs(k)[0] for k in keys) == params
        model = GraphFlopsCostModel("macs")
        assert sum(model.cost(k) for k in keys) == pytest.approx(model.arch_cost(space, arch), rel=1e-12)


def test_blocks_of_graph_keys_run_at_their_shape():
    for key in space_keys(tiny_space()).unique():
        module = build_block(key, 0.1, 1e-5)
        with torch.no_grad():
            out = module(torch.randn(*key_input_shape(key, 2)))
        h, w, c = key.output
        assert tuple(out.shape) == ((2, c) if key.kind == "pool_head" else (2, c, h, w)), str(key)


# -- table cost model ----------------------------------------------------------------------------
def test_tiny_table_prices_every_decision_and_candidate(tiny_table):
    _, table = tiny_table
    space = tiny_space()
    assert table.provenance["complete"] and len(table.entries) == 16
    model = TableCostModel(table)
    fixed, vectors = model.candidate_costs(space)
    assert len(vectors) == len(space.decisions) == 6
    prices = edge_price_table(space, table)
    fixed_edges = sum(prices[i, e.op] for i, e in enumerate(space.edges) if e.op is not None)
    assert fixed == pytest.approx(fixed_edges + head_price(space, table), rel=1e-12)
    for decision, vector in zip(space.decisions, vectors):
        assert vector.dtype == torch.float64 and vector.shape == (5,)
        indices = space.edge_indices_of(decision.label)
        for op, value in zip(decision.candidates, vector):
            assert math.isfinite(float(value))
            assert (float(value) == 0.0) == op.is_zero
            assert float(value) == pytest.approx(sum(prices[i, op] for i in indices), rel=1e-12)


def test_expected_cost_is_the_brute_force_mean_over_all_archs(tiny_table):
    _, table = tiny_table
    space = tiny_space()
    model = TableCostModel(table)
    gen = torch.Generator().manual_seed(0)
    probs = [torch.softmax(torch.randn(5, generator=gen, dtype=torch.float64), 0) for _ in space.decisions]
    prices = edge_price_table(space, table)
    head = head_price(space, table)
    brute, count = 0.0, 0
    for combo, choices in all_archs(space):
        weight = math.prod(float(p[i]) for p, i in zip(probs, combo))
        brute += weight * (edge_sum_cost(space, table, choices, prices) + head)
        count += 1
    assert count == 5 ** 6
    assert float(model.expected_cost(space, probs)) == pytest.approx(brute, rel=1e-10)


def test_arch_cost_is_the_sum_of_its_edges_entries(tiny_table):
    _, table = tiny_table
    space = tiny_space()
    model = TableCostModel(table)
    prices = edge_price_table(space, table)
    fixed, vectors = model.candidate_costs(space)
    rng = random.Random(1)
    for _ in range(20):
        arch = Arch.from_ops(space, [rng.choice(d.candidates) for d in space.decisions])
        expected = edge_sum_cost(space, table, arch.choices, prices) + head_price(space, table)
        assert model.arch_cost(space, arch) == pytest.approx(expected, rel=1e-12)
        assert sum(table.lookup(k) for k in arch_keys(space, arch)) == pytest.approx(expected, rel=1e-12)
        via_vectors = fixed + sum(float(v[i]) for v, i in zip(vectors, arch.indices(space)))
        assert via_vectors == pytest.approx(expected, rel=1e-12)
        one_hot = [torch.nn.functional.one_hot(torch.tensor(i), 5).double() for i in arch.indices(space)]
        assert float(model.expected_cost(space, one_hot)) == pytest.approx(expected, rel=1e-12)


def test_decisions_with_different_edges_brute_force():
    space = hand_space()
    table = synthetic_table(space, seed=4)
    model = TableCostModel(table)
    keys = space_keys(space)
    assert [k.kind for k in keys.fixed] == ["conv_bn", "res_block", "pool_head"]
    gen = torch.Generator().manual_seed(1)
    probs = [torch.softmax(torch.randn(len(d.candidates), generator=gen, dtype=torch.float64), 0)
             for d in space.decisions]
    prices = edge_price_table(space, table)
    head = head_price(space, table)
    brute = 0.0
    for combo, choices in all_archs(space):
        weight = math.prod(float(p[i]) for p, i in zip(probs, combo))
        cost = edge_sum_cost(space, table, choices, prices) + head
        brute += weight * cost
        arch = Arch(space.name, dict(choices), {})
        assert model.arch_cost(space, arch) == pytest.approx(cost, rel=1e-12)
    assert float(model.expected_cost(space, probs)) == pytest.approx(brute, rel=1e-12)
    probs = [p.clone().requires_grad_(True) for p in probs]
    model.expected_cost(space, probs).backward()
    for p, c in zip(probs, model.candidate_costs(space)[1]):
        assert torch.allclose(p.grad, c)


def test_missing_keys_are_listed_never_defaulted(tiny_table, tmp_path):
    _, table = tiny_table
    space = tiny_space()
    skip = next(k for k in space_keys(space).unique() if k.kind == "skip" and k.input[0] == 4)
    partial = LatencyTable(table.target, dict(table.provenance),
                           {k: v for k, v in table.entries.items() if k != str(skip)})
    model = TableCostModel(partial)
    with pytest.raises(ProxylessError) as err:
        model.candidate_costs(space)
    assert "1 key(s)" in err.value.what and str(skip) in err.value.what
    path = tmp_path / "partial.json"
    partial.save(path)
    with pytest.raises(ProxylessError, match="1 key"):
        get_cost_model(str(path), space)
    lenient = get_cost_model(str(path), space, require_all_keys=False)
    no_skip = Arch.from_ops(space, ["nor_conv_3x3"] * 6)
    assert lenient.arch_cost(space, no_skip) > 0
    with pytest.raises(ProxylessError, match="skip-input:4x4x8"):
        lenient.arch_cost(space, Arch.from_ops(space, ["skip_connect"] * 6))


def test_get_cost_model_for_graph_spaces(tiny_table, tmp_path, monkeypatch):
    path, table = tiny_table
    space = tiny_space()
    assert isinstance(get_cost_model("flops", space), GraphFlopsCostModel)
    assert get_cost_model("params", space).unit == "Mparams"
    from_path = get_cost_model(str(path), space)
    assert isinstance(from_path, TableCostModel) and from_path.unit == "ms"
    assert from_path.candidate_costs(space)[0] == TableCostModel(table).candidate_costs(space)[0]
    with pytest.raises(ProxylessError, match="resolution"):
        get_cost_model(str(path), get_space("nasbench201", **{**TINY, "resolution": 16}))
    # --hardware cpu: the cached table for this machine / backend / space is used
    monkeypatch.setenv("PROXYLESS_CACHE", str(tmp_path))
    cached = cached_table_path(space, backend_for("cpu"))
    assert "nasbench201" in cached.name
    cached.parent.mkdir(parents=True)
    cached.write_text(path.read_text())
    model = get_cost_model("cpu", space, progress=False)
    assert model.candidate_costs(space)[0] == pytest.approx(TableCostModel(table).candidate_costs(space)[0])


def test_onnxruntime_table_of_a_graph_space(tmp_path):
    pytest.importorskip("onnxruntime")
    space = tiny_space()
    table = build_lut(space, Backend("onnxruntime"), tmp_path / "ort.json", **FAST)
    assert table.provenance["backend"] == "onnxruntime"
    fixed, vectors = TableCostModel(table).candidate_costs(space)
    assert fixed > 0 and all(float(v[0]) == 0 and (v[1:] > 0).all() for v in vectors)


def test_validate_and_fit_on_graph_nets(tiny_table):
    path, _ = tiny_table
    table = LatencyTable.load(path)
    space = tiny_space()
    measure = {"rounds": 2, "per_round": 1}
    report, rows = validate_models(space, table_models(table), Backend(), 3, **measure)
    assert report["n"] == 3 and "lut" in report and len(rows) == 3
    report, _ = fit_and_validate(space, table, Backend(), 4, 3, **measure)
    assert table.predictor is not None and set(table.predictor["groups"]) <= {"8", "4", "2"}
    assert "predictor" in report
    model = table_models(table)["predictor"]
    arch = Arch.from_ops(space, ["nor_conv_3x3"] * 6)
    one_hot = [torch.nn.functional.one_hot(torch.tensor(i), 5).double() for i in arch.indices(space)]
    assert float(model.expected_cost(space, one_hot)) == pytest.approx(model.arch_cost(space, arch), rel=1e-9)


# -- CLI ---------------------------------------------------------------------------------------
def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_build_predict_measure(tmp_path, capsys):
    out = tmp_path / "t.json"
    overrides = [f"{k}={v}" for k, v in TINY.items()]
    code, text, err = run(["latency", "build", "--space", "nasbench201", *overrides, "--backend", "torch",
                           "--out", str(out), "--seconds-per-key", "0.002", "--no-progress"], capsys)
    assert code == 0, err
    assert "16 blocks" in text
    table = LatencyTable.load(out)
    table.check_target(tiny_space())
    arch_path = tmp_path / "arch.json"
    Arch.from_ops(tiny_space(), ["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1",
                                 "nor_conv_3x3"]).save(arch_path)
    code, text, err = run(["latency", "predict", str(arch_path), "--hardware", str(out), "--per-layer",
                           "--json", str(tmp_path / "p.json")], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "p.json").read_text())
    # 3 fixed edges, 5 non-zero cell edges in each of 3 cells, the head
    assert len(data["layers"]) == 3 + 15 + 1
    assert data["cost"] == pytest.approx(sum(layer["cost"] for layer in data["layers"]), rel=1e-9)
    string = format_string(["nor_conv_3x3"] * 6)
    code, text, err = run(["latency", "predict", string, "--hardware", "flops"], capsys)
    assert code == 0, err
    full = get_space("nasbench201")
    expected = GraphFlopsCostModel().arch_cost(full, Arch.from_ops(full, ["nor_conv_3x3"] * 6))
    assert f"{expected:.4f} MMACs" in text
    code, text, err = run(["latency", "measure", str(arch_path), "--rounds", "2", "--repeats", "1"], capsys)
    assert code == 0 and "median" in text, err
    config = tmp_path / "net.json"
    config.write_text(json.dumps(build_net(tiny_space(), Arch.load(arch_path)).config()))
    code, text, err = run(["latency", "measure", str(config), "--rounds", "2", "--repeats", "1"], capsys)
    assert code == 0 and "median" in text, err
    code, _, err = run(["latency", "predict", "|nor_conv_3x3~0|+|bogus~0|", "--hardware", "flops"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run(["latency", "export-ops", "--space", "nasbench201", *overrides, "--out",
                        str(tmp_path / "ops")], capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "ops" / "manifest.json").read_text())
    assert sorted(op["key"] for op in manifest["ops"]) == sorted(table.entries)
