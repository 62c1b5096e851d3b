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
