"""Compatibility with the reference release's CIFAR-10 model: its ``PyramidTreeNet`` net config
(JSON) and its checkpoint names, mapped onto the ``pyramid-tree`` space (``space/pyramid_tree.py``).

The config lists ``blocks``: a stem (``TransitionBlock``: 3x3 conv, then a BN), 3N
``ResidualTreeBlock`` (``in_bottle``, ``cell``, ``out_bottle``, ``final_bn``, ``shortcut``), the
head's BN-ReLU-pool (a ``TransitionBlock``), then ``classifier``. A cell is a tree of
``TreeNode``: the root's grouped conv, a split node (identity edges, branch BNs), two levels of
copy nodes with two leaf edges each. Its path-drop and cell-drop rates are training settings and
are not imported.

Checkpoint keys (release -> ours; K = the tree block, 1 .. 3N; e(K, name) = the edge's index,
:func:`~proxylessnas.space.pyramid_tree.block_edge_index`)::

    blocks.0.layers.0.conv / blocks.0.layers.1.bn            -> edges.0.conv / edges.0.bn
    blocks.K.in_bottle.{bn,conv}                             -> edges.e(K, in_bottle).{bn,conv}
    blocks.K.cell.edges.0.{bn,conv}                          -> edges.e(K, root).{bn,conv}
    blocks.K.cell.child_nodes.0.branch_bns.b                 -> edges.e(K, branch_bn<b>)
    blocks.K.cell.child_nodes.0.child_nodes.b.edges.e        -> edges.e(K, e<b><e>)
    blocks.K.cell.child_nodes.0.child_nodes.b.child_nodes.e.edges.f -> edges.e(K, e<b><e><f>)
    blocks.K.out_bottle.{bn,conv} / blocks.K.final_bn        -> edges.e(K, out_bottle) / e(K, final_bn)
    blocks.<3N+1>.layers.0.bn / classifier.linear            -> head.bn / head.linear

inside a leaf: ``depth_conv`` -> ``depthwise``, ``point_conv`` -> ``pointwise``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.ops import parse_ops
from proxylessnas.space.presets import get_space
from proxylessnas.space.pyramid_tree import (
    BLOCK_EDGES,
    CANDIDATES,
    LEAF_PATHS,
    NAME,
    block_label,
    block_widths,
)
from proxylessnas.space.pyramid_tree import block_edge_index as edge_index

CONFIG_NAME = "PyramidTreeNet"
_FIX = "give a PyramidTreeNet net config of the release's tree-cell CIFAR model"


def _field(data: Any, key: str, where: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise ProxylessError(f"net config has no '{key}'", where, _FIX)
    return data[key]


def _expect(ok: bool, what: str, where: str) -> None:
    if not ok:
        raise ProxylessError(f"unsupported {what}", where, _FIX)


def leaf_token(layer: Any, where: str) -> str:
    """Our op token of one leaf edge's layer config."""
    name = _field(layer, "name", where)
    if name == "IdentityLayer" and not layer.get("use_bn"):
        return "skip_connect"
    if name == "PoolingLayer" and not layer.get("use_bn") and layer.get("stride") == 1 and \
            layer.get("pool_type") in ("avg", "max"):
        return f"{layer['pool_type']}_pool_{layer['kernel_size']}x{layer['kernel_size']}"
    if name == "DepthConvLayer" and layer.get("use_bn") and layer.get("act_func") == "relu" and \
            layer.get("stride") == 1 and layer.get("groups") == 1 and layer.get("dilation") in (1, 2) and \
            layer.get("ops_order") == "bn_act_weight" and not layer.get("bias"):
        prefix = "sep_conv" if layer["dilation"] == 1 else "dil_conv"
        return f"{prefix}_{layer['kernel_size']}x{layer['kernel_size']}"
    raise ProxylessError(f"unsupported leaf layer {name}", where, "leaf edges may be identities, 3x3 pools "
                         "and BN-ReLU depthwise-separable convs (dilation 1 or 2)")


def _cell_leaves(cell: Any, where: str) -> list[str]:
    """The 12 leaf tokens of one cell, in ``LEAF_PATHS`` order, after checking its shape."""
    root = _field(cell, "edges", where)
    _expect(len(root) == 1 and root[0].get("name") == "ConvLayer" and root[0].get("groups") == 2
            and root[0].get("has_shuffle") and root[0].get("kernel_size") == 3, "cell root", where)
    split = _field(cell, "child_nodes", where)[0]
    _expect(isinstance(split, dict) and split.get("split_type") == "split"
            and split.get("merge_type") == "add" and split.get("has_branch_bn")
            and len(split.get("edges", ())) == 2
            and all(e.get("name") == "IdentityLayer" and not e.get("use_bn") for e in split["edges"]),
            "cell split node", where)
    leaves: dict[str, str] = {}
    for b, branch in enumerate(_field(split, "child_nodes", where)):
        for e, (edge, child) in enumerate(zip(_field(branch, "edges", where), branch["child_nodes"])):
            leaves[f"{b}{e}"] = leaf_token(edge, f"{where}: leaf {b}{e}")
            _expect(branch.get("split_type") == "copy" and branch.get("merge_type") == "add"
                    and isinstance(child, dict) and len(child.get("edges", ())) == 2
                    and child.get("split_type") == "copy" and child.get("merge_type") == "add"
                    and all(c is None for c in child.get("child_nodes", ())), "copy node", where)
            for f, leaf in enumerate(child["edges"]):
                leaves[f"{b}{e}{f}"] = leaf_token(leaf, f"{where}: leaf {b}{e}{f}")
    _expect(sorted(leaves) == sorted(LEAF_PATHS), "tree shape (2 branches, 2 levels of 2 edges)", where)
    return [leaves[path] for path in LEAF_PATHS]


def _backbone(blocks: list, stem_width: int, where: str) -> dict[str, int]:
    """blocks_per_stage, alpha and bottleneck whose PyramidNet widths are the blocks' widths."""
    _expect(len(blocks) % 3 == 0 and blocks, f"number of tree blocks {len(blocks)} (3 stages of N)", where)
    widths = [(_field(b, "in_bottle", where)["out_channels"], b["out_bottle"]["out_channels"])
              for b in blocks]
    per_stage, bottleneck = len(blocks) // 3, widths[0][1] // widths[0][0]
    for alpha in range(max(0, widths[-1][0] - stem_width - 2), widths[-1][0] - stem_width + 3):
        if block_widths(stem_width, per_stage, alpha, bottleneck) == widths:
            return {"blocks_per_stage": per_stage, "alpha": alpha, "bottleneck": bottleneck}
    raise ProxylessError("block widths are not a PyramidNet's (C0 + alpha i / 3N, even)", where, _FIX)


def arch_from_tree_config(data: Any, where: str = "net.config",
                          resolution: int = 32) -> tuple[GraphSpace, Arch]:
    """A reference ``PyramidTreeNet`` config as a ``pyramid-tree`` space and an arch in it."""
    _expect(_field(data, "name", where) == CONFIG_NAME, f"net config '{data.get('name')}'", where)
    blocks = _field(data, "blocks", where)
    _expect(isinstance(blocks, list) and len(blocks) >= 5, "block list", where)
    stem, head, tree = blocks[0], blocks[-1], blocks[1:-1]
    stem_conv = _field(stem, "layers", f"{where}: blocks[0]")[0]
    _expect(stem_conv.get("kernel_size") == 3 and stem_conv.get("stride") == 1
            and not stem_conv.get("use_bn"), "stem", where)
    _expect(_field(head, "layers", where)[0].get("act_func") == "relu", "head", where)
    overrides: dict[str, Any] = {"resolution": resolution, "in_chs": stem_conv["in_channels"],
                                 "stem_width": stem_conv["out_channels"]}
    overrides.update(_backbone(tree, stem_conv["out_channels"], where))
    per_stage = overrides["blocks_per_stage"]
    choices: dict[str, str] = {}
    for index, block in enumerate(tree):
        at = f"{where}: blocks[{index + 1}]"
        _expect(block.get("name") == "ResidualTreeBlock" and block.get("final_bn"), "block", at)
        stride = 2 if index in (per_stage, 2 * per_stage) else 1
        _expect(block["cell"]["edges"][0].get("stride") == stride, f"stride (expected {stride})", at)
        label = block_label(index, per_stage)
        choices.update({f"{label}.e{path}": token
                        for path, token in zip(LEAF_PATHS, _cell_leaves(block["cell"], at))})
    classifier = _field(data, "classifier", where)
    overrides["num_classes"] = classifier["out_features"]
    if classifier.get("dropout_rate"):
        overrides["dropout"] = classifier["dropout_rate"]
    default = [op.token for op in parse_ops(CANDIDATES)]
    extra = sorted(set(choices.values()) - set(default))
    if extra:  # leaf ops outside the published set widen the space rather than fail
        overrides["candidates"] = default + extra
    space = get_space(NAME, **overrides)
    arch = Arch.from_ops(space, [choices[d.label] for d in space.decisions], {"imported_from": str(where)})
    return space, arch


def load_tree_reference_config(path) -> tuple[GraphSpace, Arch]:
    from proxylessnas.space.arch import read_json

    return arch_from_tree_config(read_json(path, "net config"), str(path))


# -- checkpoint names ---------------------------------------------------------------------------
_TREE_KEY_RE = re.compile(r"^blocks\.\d+\.(in_bottle|out_bottle|final_bn|cell)\.")
_SPLIT = r"cell\.child_nodes\.0\."
_BLOCK_PARTS = (  # (pattern after "blocks.K.", edge name from the groups, the rest)
    (re.compile(r"^(in_bottle|out_bottle)\.(.+)$"), lambda m: m[1], lambda m: m[2]),
    (re.compile(r"^final_bn\.(.+)$"), lambda m: "final_bn", lambda m: m[1]),
    (re.compile(r"^cell\.edges\.0\.(.+)$"), lambda m: "root", lambda m: m[1]),
    (re.compile(rf"^{_SPLIT}branch_bns\.([01])\.(.+)$"), lambda m: f"branch_bn{m[1]}", lambda m: m[2]),
    (re.compile(rf"^{_SPLIT}child_nodes\.([01])\.edges\.([01])\.(.+)$"), lambda m: f"e{m[1]}{m[2]}",
     lambda m: m[3]),
    (re.compile(rf"^{_SPLIT}child_nodes\.([01])\.child_nodes\.([01])\.edges\.([01])\.(.+)$"),
     lambda m: f"e{m[1]}{m[2]}{m[3]}", lambda m: m[4]),
)
_LEAF_PARTS = {"depth_conv.": "depthwise.", "point_conv.": "pointwise."}


def is_tree_reference_state_dict(state: dict[str, Any]) -> bool:
    return any(_TREE_KEY_RE.match(k[7:] if k.startswith("module.") else k) for k in state)


def from_tree_reference_state_dict(state: dict[str, torch.Tensor], where: str = "checkpoint") -> dict:
    """Rename a release-layout ``PyramidTreeNet`` state dict to a ``GraphNet``'s keys."""
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    last = max((int(m[1]) for k in state if (m := re.match(r"^blocks\.(\d+)\.", k))), default=0)
    out = {}
    for key, value in state.items():
        out[_our_key(key, last, where)] = value
    return out


def _our_key(key: str, last: int, where: str) -> str:
    if key.startswith("classifier.linear."):
        return "head.linear." + key[len("classifier.linear."):]
    match = re.match(r"^blocks\.(\d+)\.(.+)$", key)
    if match is not None:
        block, rest = int(match[1]), match[2]
        if block == 0 and rest.startswith(("layers.0.conv.", "layers.1.bn.")):
            return "edges.0." + rest[len("layers.0."):]
        if block == last and rest.startswith("layers.0.bn."):
            return "head.bn." + rest[len("layers.0.bn."):]
        for pattern, edge, tail in _BLOCK_PARTS:
            part = pattern.match(rest)
            if part is not None and 0 < block < last:
                inner = tail(part)
                for old, new in _LEAF_PARTS.items():
                    inner = new + inner[len(old):] if inner.startswith(old) else inner
                return f"edges.{edge_index(block - 1, edge(part))}.{inner}"
    raise ProxylessError(f"unexpected key '{key}' in a PyramidTreeNet checkpoint", where,
                         "give the release's tree-cell CIFAR checkpoint ({'state_dict': ...})")


def to_tree_reference_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A ``pyramid-tree`` ``GraphNet``'s state dict in the release's layout (inverse of
    :func:`from_tree_reference_state_dict`)."""
    blocks = (len(model.net_config.space.edges) - 1) // len(BLOCK_EDGES)
    return {_release_key(key, blocks): value for key, value in model.state_dict().items()}


def _release_key(key: str, blocks: int) -> str:
    if key.startswith("head."):
        part, rest = key[5:].split(".", 1)
        return f"classifier.linear.{rest}" if part == "linear" else f"blocks.{blocks + 1}.layers.0.bn.{rest}"
    _, index, rest = key.split(".", 2)
    if index == "0":
        return f"blocks.0.layers.{0 if rest.startswith('conv.') else 1}.{rest}"
    block, local = divmod(int(index) - 1, len(BLOCK_EDGES))
    name, prefix = BLOCK_EDGES[local], f"blocks.{block + 1}."
    for old, new in _LEAF_PARTS.items():
        rest = old + rest[len(new):] if rest.startswith(new) else rest
    if name in ("in_bottle", "out_bottle", "final_bn"):
        return f"{prefix}{name}.{rest}"
    if name == "root":
        return f"{prefix}cell.edges.0.{rest}"
    split = f"{prefix}cell.child_nodes.0."
    if name.startswith("branch_bn"):
        return f"{split}branch_bns.{name[-1]}.{rest}"
    path = name[1:]  # e<b><e>[<f>]
    if len(path) == 2:
        return f"{split}child_nodes.{path[0]}.edges.{path[1]}.{rest}"
    return f"{split}child_nodes.{path[0]}.child_nodes.{path[1]}.edges.{path[2]}.{rest}"
