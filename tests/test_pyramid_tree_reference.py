"""The release's PyramidTreeNet config and checkpoint names import into ``proxyless_cifar``."""

import json

import pytest
import torch

from proxylessnas import zoo
from proxylessnas.errors import ProxylessError
from proxylessnas.nets import build_net
from proxylessnas.nets.pyramid_tree_reference import (
    arch_from_tree_config,
    from_tree_reference_state_dict,
    is_tree_reference_state_dict,
    load_tree_reference_config,
)
from proxylessnas.nets.weights import read_state_dict
from proxylessnas.space.pyramid_tree import block_edge_index

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@pytest.fixture
def config(shared_dir):
    path = shared_dir / "reference" / "official" / "proxyless_cifar.config"
    if not path.is_file():
        pytest.skip("../shared/reference/official/proxyless_cifar.config is absent")
    torch.set_num_threads(1)
    return path, json.loads(path.read_text())


def _bn(prefix, chs):
    return {f"{prefix}bn.{k}": () if k == "num_batches_tracked" else (chs,) for k in BN_KEYS}


def _layer(prefix, layer):
    """Names and shapes of one release layer (BN-act-weight order: the BN sees the input)."""
    shapes = _bn(prefix, layer["in_channels"]) if layer.get("use_bn") else {}
    name, cin, cout = layer["name"], layer.get("in_channels"), layer.get("out_channels")
    if name == "ConvLayer":
        k = layer["kernel_size"]
        shapes[f"{prefix}conv.weight"] = (cout, cin // layer["groups"], k, k)
    elif name == "DepthConvLayer":
        k = layer["kernel_size"]
        shapes[f"{prefix}depth_conv.weight"] = (cin, 1, k, k)
        shapes[f"{prefix}point_conv.weight"] = (cout, cin // layer["groups"], 1, 1)
    elif name == "LinearLayer":
        shapes[f"{prefix}linear.weight"] = (layer["out_features"], layer["in_features"])
        shapes[f"{prefix}linear.bias"] = (layer["out_features"],)
    return shapes


def _node(prefix, node):
    shapes = {}
    for i, (edge, child) in enumerate(zip(node["edges"], node["child_nodes"])):
        shapes.update(_layer(f"{prefix}edges.{i}.", edge))
        if child is not None:
            shapes.update(_node(f"{prefix}child_nodes.{i}.", child))
        if node["has_branch_bn"]:
            shapes.update({k.replace("bn.", f"branch_bns.{i}.", 1): v
                           for k, v in _bn(prefix, node["out_channels"]).items()})
    return shapes


def reference_shapes(data):
    """The release's state-dict names and shapes, read from the config's description."""
    shapes = {}
    for b, block in enumerate(data["blocks"]):
        prefix = f"blocks.{b}."
        if block["name"] == "TransitionBlock":
            for i, layer in enumerate(block["layers"]):
                shapes.update(_layer(f"{prefix}layers.{i}.", layer))
            continue
        for part in ("shortcut", "in_bottle", "out_bottle"):
            shapes.update(_layer(f"{prefix}{part}.", block[part]))
        shapes.update(_node(f"{prefix}cell.", block["cell"]))
        shapes.update({k.replace("bn.", "final_bn.", 1): v
                       for k, v in _bn(prefix, block["out_bottle"]["out_channels"]).items()})
    shapes.update(_layer("classifier.", data["classifier"]))
    return shapes


def test_config_imports_as_the_zoo_net(config):
    path, data = config
    space, arch = load_tree_reference_config(path)
    entry = zoo.get_entry("proxyless_cifar")
    assert space == entry.space() and arch.choices == entry.arch().choices
    imported, ours = build_net(space, arch), zoo.create("proxyless_cifar")
    assert sum(p.numel() for p in imported.parameters()) == 5_731_530
    assert [(k, v.shape) for k, v in imported.state_dict().items()] == \
        [(k, v.shape) for k, v in ours.state_dict().items()]


def test_reference_checkpoint_names_load(config, tmp_path):
    _, data = config
    shapes = reference_shapes(data)
    torch.manual_seed(0)
    state = {k: torch.randint(0, 5, s) if k.endswith("num_batches_tracked") else torch.randn(s)
             for k, s in shapes.items()}
    assert is_tree_reference_state_dict(state)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ref.pth")
    assert len(read_state_dict(tmp_path / "ref.pth")) == len(state)  # torch.load(weights_only=True)
    model = zoo.create("proxyless_cifar", pretrained_path=str(tmp_path / "ref.pth"))
    assert len(model.state_dict()) == len(state)
    leaf = "blocks.54.cell.child_nodes.0.child_nodes.1.child_nodes.0.edges.1."
    ours = model.edges[block_edge_index(53, "e101")]
    assert torch.equal(ours.depthwise.weight, state[leaf + "depth_conv.weight"])
    assert torch.equal(ours.bn.running_var, state[leaf + "bn.running_var"])
    assert torch.equal(model.edges[block_edge_index(18, "root")].conv.weight,
                       state["blocks.19.cell.edges.0.conv.weight"])
    assert torch.equal(model.head.bn.weight, state["blocks.55.layers.0.bn.weight"])
    assert torch.equal(model.edges[0].bn.bias, state["blocks.0.layers.1.bn.bias"])


def test_bad_configs_and_keys_are_errors(config):
    _, data = config
    other = json.loads(json.dumps(data))
    other["blocks"][3]["cell"]["child_nodes"][0]["child_nodes"][0]["edges"][0]["name"] = "MBInvertedConvLayer"
    with pytest.raises(ProxylessError, match="unsupported leaf layer"):
        arch_from_tree_config(other)
    with pytest.raises(ProxylessError, match="unsupported net config"):
        arch_from_tree_config({**data, "name": "Other"})
    with pytest.raises(ProxylessError, match="unexpected key"):
        from_tree_reference_state_dict({"blocks.1.cell.edges.0.conv.weight": torch.ones(1),
                                        "blocks.2.whatever": torch.ones(1)})


# -- an independent reading of the release's forward, from its config: BN-act-weight layers, a
# -- tree node's branches (edge, child, branch BN + the edge's output), zero-padded shortcuts
def _shuffle(x, groups):
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _weight(layer, sd, p, x):
    name, f = layer["name"], torch.nn.functional
    if name == "ConvLayer":
        pad = layer["kernel_size"] // 2 * layer["dilation"]
        x = f.conv2d(x, sd[p + "conv.weight"], None, layer["stride"], pad, layer["dilation"], layer["groups"])
    elif name == "DepthConvLayer":
        x = f.conv2d(x, sd[p + "depth_conv.weight"], None, layer["stride"],
                     layer["kernel_size"] // 2 * layer["dilation"], layer["dilation"], x.shape[1])
        x = f.conv2d(x, sd[p + "point_conv.weight"], None, 1, 0, 1, layer["groups"])
    elif name == "PoolingLayer":
        k, s = layer["kernel_size"], layer["stride"]
        pad = k // 2 if s == 1 else 0
        x = f.avg_pool2d(x, k, s, pad, count_include_pad=False) if layer["pool_type"] == "avg" else \
            f.max_pool2d(x, k, s, pad)
    elif name == "LinearLayer":
        return f.linear(x, sd[p + "linear.weight"], sd[p + "linear.bias"])
    if layer.get("has_shuffle") and layer.get("groups", 1) > 1:
        x = _shuffle(x, layer["groups"])
    return x


def _bn_apply(sd, p, x):
    return torch.nn.functional.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"],
                                          sd[p + "bias"], False, 0.0, 1e-5)


def _run_layer(layer, sd, p, x):
    for op in layer["ops_order"].split("_"):
        if op == "bn" and layer.get("use_bn"):
            x = _bn_apply(sd, p + "bn.", x)
        elif op == "act" and layer.get("act_func") == "relu":
            x = torch.relu(x)
        elif op == "weight":
            x = _weight(layer, sd, p, x)
    return x


def _run_node(node, sd, p, x):
    count = len(node["edges"])
    if node["split_type"] == "split":
        inputs = list(torch.split(x, x.shape[1] // count, 1))
    else:
        inputs = [x] * count
    outputs = []
    for i, (edge, child) in enumerate(zip(node["edges"], node["child_nodes"])):
        y = edge_y = _run_layer(edge, sd, f"{p}edges.{i}.", inputs[i])
        if child is not None:
            y = _run_node(child, sd, f"{p}child_nodes.{i}.", y)
        if node["has_branch_bn"]:
            y = _bn_apply(sd, f"{p}branch_bns.{i}.", y) + edge_y
        outputs.append(y)
    return torch.cat(outputs, 1) if node["merge_type"] == "concat" else sum(outputs)


def reference_forward(data, sd, x):
    for b, block in enumerate(data["blocks"]):
        p = f"blocks.{b}."
        if block["name"] == "TransitionBlock":
            for i, layer in enumerate(block["layers"]):
                x = _run_layer(layer, sd, f"{p}layers.{i}.", x)
            continue
        short = _run_layer(block["shortcut"], sd, p + "shortcut.", x)
        y = _run_layer(block["in_bottle"], sd, p + "in_bottle.", x)
        y = _run_node(block["cell"], sd, p + "cell.", y)
        y = _run_layer(block["out_bottle"], sd, p + "out_bottle.", y)
        y = _bn_apply(sd, p + "final_bn.", y)
        pad = y.new_zeros(y.shape[0], y.shape[1] - short.shape[1], *y.shape[2:])
        x = torch.cat((short, pad), 1) + y
    return _weight(data["classifier"], sd, "classifier.", x.flatten(1))


def test_loaded_net_computes_the_release_forward(config, tmp_path):
    _, data = config
    torch.manual_seed(0)
    state = {k: torch.zeros(s, dtype=torch.long) if k.endswith("num_batches_tracked") else
             (torch.rand(s) + 0.5 if k.endswith("running_var") else 0.2 * torch.randn(s))
             for k, s in reference_shapes(data).items()}
    torch.save({"state_dict": state}, tmp_path / "ref.pth")
    model = zoo.create("proxyless_cifar", pretrained_path=str(tmp_path / "ref.pth")).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours, theirs = model(x), reference_forward(data, state, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * float(theirs.abs().max()))


def test_our_weights_write_back_in_the_release_layout(config):
    from proxylessnas.nets.pyramid_tree_reference import to_tree_reference_state_dict

    _, data = config
    model = zoo.create("proxyless_cifar")
    release = to_tree_reference_state_dict(model)
    assert {k: tuple(v.shape) for k, v in release.items()} == reference_shapes(data)
    back = from_tree_reference_state_dict(release)
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items()) and len(back) == len(release)
