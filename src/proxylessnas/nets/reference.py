"""Compatibility with the reference release of the paper: its net.config JSON and its
checkpoint layout.

Checkpoint key layout (reference -> ours)::

    first_conv.{conv,bn}                               -> stem.{conv,bn}
    blocks.I.mobile_inverted_conv.inverted_bottleneck  -> blocks.J.body.expand
    blocks.I.mobile_inverted_conv.depth_conv           -> blocks.J.body.depthwise
    blocks.I.mobile_inverted_conv.point_linear         -> blocks.J.body.project
    feature_mix_layer.{conv,bn}                        -> head.{conv,bn}
    classifier.linear                                  -> classifier.linear

I counts every block of the chain, zero blocks included (they hold no weights); J counts only
the blocks our net keeps, so the I with weights, in order, map onto J = 0, 1, 2, ...
"""

from __future__ import annotations

import re
from typing import Any

import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.net import ProxylessNet
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.ops import parse_ops
from proxylessnas.space.presets import PAPER_CANDIDATES, PAPER_DEPTHS, PAPER_STRIDES, get_space
from proxylessnas.space.spec import SearchSpace

_PARTS = {"inverted_bottleneck": "expand", "depth_conv": "depthwise", "point_linear": "project"}
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.mobile_inverted_conv\.(\w+)\.(.+)$")
_PREFIXES = {
    "first_conv.": "stem.", "feature_mix_layer.": "head.", "classifier.linear.": "classifier.linear.",
}


def is_reference_state_dict(state: dict[str, Any]) -> bool:
    return any(k.startswith(("first_conv.", "feature_mix_layer.")) or _BLOCK_RE.match(k)
               for k in _strip_module(state))


def _strip_module(state: dict[str, Any]) -> dict[str, Any]:
    """Drop the 'module.' prefix that DataParallel adds."""
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}


def from_reference_state_dict(state: dict[str, torch.Tensor], where: str = "checkpoint") -> dict:
    """Rename a reference-layout state dict to this package's keys."""
    state = _strip_module(state)
    block_ids = sorted({int(m.group(1)) for k in state if (m := _BLOCK_RE.match(k))})
    position = {block: j for j, block in enumerate(block_ids)}
    out = {}
    for key, value in state.items():
        match = _BLOCK_RE.match(key)
        if match:
            block, part, rest = int(match.group(1)), match.group(2), match.group(3)
            if part not in _PARTS:
                raise ProxylessError(f"unknown block part '{part}' in key '{key}'", where,
                                     "give a ProxylessNAS (MBConv) checkpoint")
            out[f"blocks.{position[block]}.body.{_PARTS[part]}.{rest}"] = value
            continue
        for old, new in _PREFIXES.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            raise ProxylessError(f"unexpected key '{key}' in reference checkpoint", where,
                                 "give a ProxylessNAS checkpoint ({'state_dict': ...})")
    return out


def to_reference_state_dict(model: ProxylessNet, space: SearchSpace) -> dict[str, torch.Tensor]:
    """Our state dict in the reference layout (block indices count zero blocks too)."""
    chain_index = {layer.label: i for i, layer in enumerate(space.layers)}
    labels = [b.label for b in model.net_config.blocks]
    parts = {v: k for k, v in _PARTS.items()}
    prefixes = {v: k for k, v in _PREFIXES.items()}
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("blocks."):
            _, j, _, part, rest = key.split(".", 4)
            out[f"blocks.{chain_index[labels[int(j)]]}.mobile_inverted_conv.{parts[part]}.{rest}"] = value
            continue
        for new, old in prefixes.items():
            if key.startswith(new):
                out[old + key[len(new):]] = value
                break
    return out


def _get(data: dict, key: str, where: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise ProxylessError(f"net config has no '{key}'", where,
                             "give a reference net.config (ProxylessNASNets)")
    return data[key]


def arch_from_reference_config(data: Any, where: str = "net.config",
                               resolution: int = 224) -> tuple[SearchSpace, Arch]:
    """A reference ``net.config`` (name ProxylessNASNets) as a space in the paper's family and
    an arch in it. Stages start where a non-zero block changes width; stage widths, depths and
    strides are read from the blocks; zero blocks become the ``zero`` op."""
    name = _get(data, "name", where)
    if name != "ProxylessNASNets":
        raise ProxylessError(f"unsupported net config '{name}'", where,
                             "only ProxylessNASNets (MBConv chain) and PyramidTreeNet configs can be "
                             "imported")
    stem = _get(data, "first_conv", where)
    blocks = _get(data, "blocks", where)
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise ProxylessError("net config has too few blocks", where, "give a full net.config")
    parsed = []
    for i, block in enumerate(blocks):
        conv = _get(block, "mobile_inverted_conv", f"{where}: blocks[{i}]")
        if conv.get("name") == "ZeroLayer":
            parsed.append(None)
        elif conv.get("name") == "MBInvertedConvLayer":
            parsed.append(conv)
        else:
            raise ProxylessError(f"unsupported layer '{conv.get('name')}'", f"{where}: blocks[{i}]",
                                 "only MBInvertedConvLayer and ZeroLayer blocks can be imported")
    first = parsed[0]
    if first is None:
        raise ProxylessError("the first block is zero", where, "give a ProxylessNAS net config")
    stages: list[list] = []
    for conv in parsed[1:]:
        if conv is not None and (conv["in_channels"] != conv["out_channels"] or not stages):
            stages.append([conv])
        elif not stages:
            raise ProxylessError("a zero block before the first searched stage", where,
                                 "give a ProxylessNAS net config")
        else:
            stages[-1].append(conv)
    mix = _get(data, "feature_mix_layer", where)
    classifier = _get(data, "classifier", where)
    bn = data.get("bn") or {}
    overrides = {
        "stem_width": stem["out_channels"], "first_width": first["out_channels"],
        "stage_widths": [stage[0]["out_channels"] for stage in stages],
        "head_width": mix["out_channels"], "num_classes": classifier["out_features"],
        "resolution": resolution,
    }
    depths = [len(stage) for stage in stages]
    strides = [stage[0]["stride"] for stage in stages]
    if depths != list(PAPER_DEPTHS):
        overrides["depths"] = depths
    if strides != list(PAPER_STRIDES):
        overrides["strides"] = strides
    if bn:
        overrides.update(bn_momentum=bn.get("momentum", 0.1), bn_eps=bn.get("eps", 1e-3))
    ops = ["zero" if c is None else f"mb_k{c['kernel_size']}_e{c['expand_ratio']}" for c in parsed[1:]]
    paper_ops = [op.token for op in parse_ops(PAPER_CANDIDATES)]
    extra = sorted({op for op in ops if op != "zero"} - set(paper_ops))
    if extra:  # ops outside the paper's candidate set widen the space rather than fail
        overrides["candidates"] = paper_ops + extra
    space = get_space("proxyless-imagenet", **overrides)
    arch = Arch.from_ops(space, ops, metadata={"imported_from": str(where)})
    return space, arch


def load_reference_config(path) -> tuple[SearchSpace | GraphSpace, Arch]:
    """A reference net config file: an MBConv chain (``ProxylessNASNets``) or the CIFAR-10
    tree-cell net (``PyramidTreeNet``, ``nets/pyramid_tree_reference.py``)."""
    from proxylessnas.nets.pyramid_tree_reference import CONFIG_NAME, arch_from_tree_config
    from proxylessnas.space.arch import read_json

    data = read_json(path, "net config")
    if isinstance(data, dict) and data.get("name") == CONFIG_NAME:
        return arch_from_tree_config(data, str(path))
    return arch_from_reference_config(data, str(path))
