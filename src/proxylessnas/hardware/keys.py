"""``LayerKey``: what a block's cost depends on, derived from shape inference.

One canonical string per key, used when a table is built and when it is read::

    stem-input:32x32x3-output:32x32x32-kernel:3-expand:1-stride:1-residual:0
    mbconv-input:32x32x24-output:16x16x40-kernel:5-expand:6-stride:2-residual:0
    head-input:4x4x320-output:4x4x1280-kernel:1-expand:1-stride:1-residual:0
    classifier-input:4x4x1280-output:1x1x10-kernel:1-expand:1-stride:1-residual:0

The classifier's input is the head's output map (the key includes the global pooling). Two
layers with the same shapes and op share a key, so a table holds each unique block once. The
zero op has no key: it costs 0 by definition.

Graph spaces (``space/graph.py``) use the same format with one kind per op family on an edge,
named after the op token (``expand`` is always 1, ``residual`` always 0; ``kernel`` is the op's,
1 for skip)::

    conv_bn-input:32x32x3-output:32x32x16-kernel:3-expand:1-stride:1-residual:0     stem
    nor_conv-input:32x32x16-output:32x32x16-kernel:3-expand:1-stride:1-residual:0   nor_conv_3x3
    avg_pool-input:32x32x16-output:32x32x16-kernel:3-expand:1-stride:1-residual:0   avg_pool_3x3
    skip-input:32x32x16-output:32x32x16-kernel:1-expand:1-stride:1-residual:0       skip_connect
    res_block-input:32x32x16-output:16x16x32-kernel:3-expand:1-stride:2-residual:0  reduction
    pool_head-input:8x8x64-output:1x1x10-kernel:1-expand:1-stride:1-residual:0      BN-ReLU-pool-linear

An ``mb_k<k>_e<e>`` op on an edge is an ``mbconv`` key with ``residual:0`` (the graph's node sum
adds any shortcut), a head without BN-ReLU a ``classifier`` key. ``none``/``zero`` have no key
(cost 0). ``skip_connect`` is measured like any op (an identity module: the backend's per-call
overhead, a few microseconds), not defined as 0. No key covers the sum of a node's incoming
edges: that cost is left to the predictor's per-edge constant (``hardware/predictor.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import singledispatch

from proxylessnas.errors import ProxylessError
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import Edge, GraphSpace
from proxylessnas.space.ops import (
    AvgPoolOp,
    ConvBNOp,
    MBConvOp,
    OpSpec,
    ReLUConvBNOp,
    ResBlockOp,
    SkipOp,
)
from proxylessnas.space.shapes import Shape, infer_shapes
from proxylessnas.space.spec import SearchSpace

CHAIN_KINDS = ("stem", "mbconv", "head", "classifier")
GRAPH_KINDS = ("conv_bn", "res_block", "nor_conv", "avg_pool", "skip", "pool_head")
"""Kinds of graph-space edges and heads (besides ``mbconv`` and ``classifier``)."""
KINDS = CHAIN_KINDS + GRAPH_KINDS
_KEY_RE = re.compile(
    r"^(?P<kind>[a-z][a-z_]*)-input:(?P<ih>\d+)x(?P<iw>\d+)x(?P<ic>\d+)"
    r"-output:(?P<oh>\d+)x(?P<ow>\d+)x(?P<oc>\d+)-kernel:(?P<k>\d+)-expand:(?P<e>\d+)"
    r"-stride:(?P<s>\d+)-residual:(?P<r>[01])$")


@dataclass(frozen=True, order=True)
class LayerKey:
    """Op kind, input and output H x W x C, kernel size, expand ratio, stride, residual."""

    kind: str
    input: tuple[int, int, int]
    output: tuple[int, int, int]
    kernel_size: int = 1
    expand_ratio: int = 1
    stride: int = 1
    residual: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ProxylessError(f"unknown layer kind '{self.kind}'", "latency key",
                                 f"use one of {', '.join(KINDS)}")

    def __str__(self) -> str:
        (ih, iw, ic), (oh, ow, oc) = self.input, self.output
        return (f"{self.kind}-input:{ih}x{iw}x{ic}-output:{oh}x{ow}x{oc}"
                f"-kernel:{self.kernel_size}-expand:{self.expand_ratio}-stride:{self.stride}"
                f"-residual:{int(self.residual)}")

    @classmethod
    def parse(cls, text: str, where: str = "latency key") -> LayerKey:
        match = _KEY_RE.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ProxylessError(f"malformed layer key '{text}'", where,
                                 "write keys as printed by 'proxyless latency export-ops'")
        g = {name: match.group(name) for name in _KEY_RE.groupindex}
        return cls(g["kind"], (int(g["ih"]), int(g["iw"]), int(g["ic"])),
                   (int(g["oh"]), int(g["ow"]), int(g["oc"])), int(g["k"]), int(g["e"]),
                   int(g["s"]), g["r"] == "1")

    @property
    def input_shape(self) -> Shape:
        return Shape(*self.input)

    @property
    def output_shape(self) -> Shape:
        return Shape(*self.output)


def _hwc(shape: Shape) -> tuple[int, int, int]:
    return (shape.height, shape.width, shape.channels)


def _sort_key(key: LayerKey) -> tuple:
    return (KINDS.index(key.kind), -key.input[0], key.input[2], str(key))


@dataclass(frozen=True)
class SpaceKeys:
    """Every key a space can need: fixed parts, and per searched layer one key per candidate
    (``None`` for zero), in ``space.searched_layers`` / candidate order."""

    fixed: tuple[LayerKey, ...]
    searched: tuple[tuple[LayerKey | None, ...], ...]

    def unique(self) -> list[LayerKey]:
        keys = set(self.fixed) | {k for layer in self.searched for k in layer if k is not None}
        return sorted(keys, key=_sort_key)

    def candidate_keys(self) -> tuple[tuple[tuple[LayerKey, ...], ...], ...]:
        """Per searched layer, per candidate, the keys it costs: ``(key,)``, or ``()`` for zero."""
        return tuple(tuple(() if k is None else (k,) for k in layer) for layer in self.searched)


@dataclass(frozen=True)
class GraphSpaceKeys:
    """Every key a graph space can need.

    ``fixed``: the keys of the fixed edges (and of decisions with one candidate), in edge order
    with repeats (each edge is paid once), then the head. ``searched``: per searched decision (in
    ``space.decisions`` order), per candidate, the keys of all the edges taking that decision, in
    edge order with repeats (``()`` for zero). Edges of shared cells repeat the same key; a table
    holds it once (:meth:`unique`)."""

    fixed: tuple[LayerKey, ...]
    searched: tuple[tuple[tuple[LayerKey, ...], ...], ...]

    def unique(self) -> list[LayerKey]:
        keys = set(self.fixed) | {k for decision in self.searched for cand in decision for k in cand}
        return sorted(keys, key=_sort_key)

    def candidate_keys(self) -> tuple[tuple[tuple[LayerKey, ...], ...], ...]:
        """Per searched decision, per candidate, the keys of its edges (the same as ``searched``)."""
        return self.searched


def block_key(space: SearchSpace, label: str, op: OpSpec, resolution: int | None = None) -> LayerKey | None:
    """Key of layer ``label`` running ``op`` (``None`` for zero)."""
    if op.is_zero:
        return None
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    layer = space.layer(label)
    shape = shapes[label]
    return LayerKey("mbconv", _hwc(shape.input), _hwc(shape.output), op.kernel_size,
                    op.expand_ratio, layer.stride, layer.residual_allowed)


@singledispatch
def space_keys(space: SearchSpace, resolution: int | None = None) -> SpaceKeys:
    """All keys of ``space`` at ``resolution`` (default: the space's), from :func:`infer_shapes`.

    A chain gives :class:`SpaceKeys`, a graph space :class:`GraphSpaceKeys`."""
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    stem, head = shapes["stem"], shapes["head"]
    fixed = [LayerKey("stem", _hwc(stem.input), _hwc(stem.output), space.stem.kernel_size, 1,
                      space.stem.stride, False)]
    searched = []
    for layer in space.layers:
        shape = shapes[layer.label]
        keys = tuple(None if op.is_zero else
                     LayerKey("mbconv", _hwc(shape.input), _hwc(shape.output), op.kernel_size,
                              op.expand_ratio, layer.stride, layer.residual_allowed)
                     for op in layer.candidates)
        if layer.searchable:
            searched.append(keys)
        elif keys[0] is not None:
            fixed.append(keys[0])
    fixed.append(LayerKey("head", _hwc(head.input), _hwc(head.output), 1, 1, 1, False))
    fixed.append(LayerKey("classifier", _hwc(head.output), (1, 1, space.head.num_classes)))
    return SpaceKeys(tuple(fixed), tuple(searched))


@singledispatch
def arch_keys(space: SearchSpace, arch: Arch, resolution: int | None = None) -> list[LayerKey]:
    """The keys of one architecture in chain order, fixed parts included, zero layers left out
    (a graph space: every non-zero edge in edge order, then the head)."""
    arch.validate(space)
    keys = space_keys(space, resolution)
    stem, head, classifier = keys.fixed[0], keys.fixed[-2], keys.fixed[-1]
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    body = []
    for layer, op in zip(space.layers, arch.ops(space)):
        if not op.is_zero:
            shape = shapes[layer.label]
            body.append(LayerKey("mbconv", _hwc(shape.input), _hwc(shape.output), op.kernel_size,
                                 op.expand_ratio, layer.stride, layer.residual_allowed))
    return [stem, *body, head, classifier]


# -- graph spaces ------------------------------------------------------------------------------
_EDGE_KINDS: dict[type, str] = {ConvBNOp: "conv_bn", ResBlockOp: "res_block", ReLUConvBNOp: "nor_conv",
                                AvgPoolOp: "avg_pool"}
_KIND_OPS: dict[str, type] = {kind: op for op, kind in _EDGE_KINDS.items()}


def edge_key(op: OpSpec, edge: Edge, src: Shape, dst: Shape) -> LayerKey | None:
    """Key of ``op`` on ``edge`` from node shape ``src`` to ``dst`` (``None`` for zero)."""
    if op.is_zero:
        return None
    i, o = _hwc(src), _hwc(dst)
    if isinstance(op, SkipOp):
        return LayerKey("skip", i, o, 1, 1, edge.stride, False)
    if isinstance(op, MBConvOp):
        return LayerKey("mbconv", i, o, op.kernel_size, op.expand_ratio, edge.stride, False)
    kind = _EDGE_KINDS.get(type(op))
    if kind is None:
        raise ProxylessError(f"no latency key for op '{op.token}'", f"edge {edge.label}",
                             "use a cell, skeleton or MBConv op")
    return LayerKey(kind, i, o, op.kernel_size, 1, edge.stride, False)


def key_op(key: LayerKey) -> OpSpec:
    """The op of a graph-edge key (``skip``, ``nor_conv``, ``avg_pool``, ``conv_bn``, ``res_block``,
    ``mbconv``): what :func:`~proxylessnas.nets.graph_net.build_op` builds for it."""
    if key.kind == "skip":
        return SkipOp()
    if key.kind == "mbconv":
        return MBConvOp(key.kernel_size, key.expand_ratio)
    if key.kind not in _KIND_OPS:
        raise ProxylessError(f"'{key.kind}' is not a graph-edge key", str(key),
                             f"use one of skip, mbconv, {', '.join(_KIND_OPS)}")
    return _KIND_OPS[key.kind](key.kernel_size)


def graph_head_key(space: GraphSpace, resolution: int | None = None) -> LayerKey:
    """The head's key: ``pool_head`` (BN-ReLU-pool-linear) or ``classifier`` (pool-linear)."""
    shape = space.node_shapes(resolution)[space.output]
    kind = "pool_head" if space.head.bn_relu else "classifier"
    return LayerKey(kind, _hwc(shape), (1, 1, space.head.num_classes))


@space_keys.register
def _graph_space_keys(space: GraphSpace, resolution: int | None = None) -> GraphSpaceKeys:
    nodes = space.node_shapes(resolution)
    searched_labels = {d.label for d in space.decisions}

    def key(op: OpSpec, edge: Edge) -> LayerKey | None:
        return edge_key(op, edge, nodes[edge.src], nodes[edge.dst])

    fixed = []
    for edge in space.edges:
        if edge.decision not in searched_labels:
            op = edge.op if edge.op is not None else space.decision(edge.decision).candidates[0]
            k = key(op, edge)
            if k is not None:
                fixed.append(k)
    fixed.append(graph_head_key(space, resolution))
    searched = []
    for decision in space.decisions:
        edges = space.edges_of(decision.label)
        searched.append(tuple(tuple(k for e in edges if (k := key(op, e)) is not None)
                              for op in decision.candidates))
    return GraphSpaceKeys(tuple(fixed), tuple(searched))


@arch_keys.register
def _graph_arch_keys(space: GraphSpace, arch: Arch, resolution: int | None = None) -> list[LayerKey]:
    arch.validate(space)
    nodes = space.node_shapes(resolution)
    ops = space.edge_ops(arch.choices)
    keys = [edge_key(op, e, nodes[e.src], nodes[e.dst]) for e, op in zip(space.edges, ops)]
    return [k for k in keys if k is not None] + [graph_head_key(space, resolution)]
