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

The tree cell's ops (``pyramid-tree``) key the same way: ``sep_conv``, ``dil_conv``, ``max_pool``,
``bn``, ``chunk``, ``pad_skip`` and the pre-activation convs ``bn_conv`` / ``bn_relu_conv``, whose
``expand`` field carries their number of groups (``bn_relu_conv_3x3_g2``: kernel 3, expand 2).

An ``mb_k<k>_e<e>`` op on an edge is an ``mbconv`` key with ``residual:0`` (the graph's node sum
adds any shortcut), a head without BN-ReLU a ``classifier`` key. ``none``/``zero`` have no key
(cost 0). ``skip_connect`` is measured like any op (an identity module: the backend's per-call
overhead, a few microseconds), not defined as 0. No key covers the sum of a node's incoming
edges: that cost is left to the predictor's per-edge constant (``hardware/predictor.py``).

Each op's kind, kernel and expand come from the op registry (``nets/op_registry.py``), which also
turns a key back into its op (:func:`key_op`); :func:`key_of` adds the shapes, the stride and a
chain layer's shortcut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import singledispatch

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.op_registry import KEY_KINDS, op_from_key, op_key_fields
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import Edge, GraphSpace
from proxylessnas.space.ops import OpSpec
from proxylessnas.space.shapes import LayerShape, Shape, infer_shapes
from proxylessnas.space.spec import LayerSpec, SearchSpace

KINDS = KEY_KINDS
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


def key_of(op, src: Shape, dst: Shape, stride: int = 1, residual: bool = False) -> LayerKey | None:
    """Key of ``op`` (any op, fixed parts included) from ``src`` to ``dst``; ``None`` for zero."""
    fields = op_key_fields(op)
    if fields is None:
        return None
    kind, kernel, expand = fields
    return LayerKey(kind, _hwc(src), _hwc(dst), kernel, expand, stride, residual)


def key_op(key: LayerKey):
    """The op a key prices (what the op registry builds and counts for it)."""
    return op_from_key(key.kind, key.kernel_size, key.expand_ratio)


def _layer_key(layer: LayerSpec, op: OpSpec, shape: LayerShape) -> LayerKey | None:
    """A chain layer's block includes its identity shortcut (stride 1 and in == out)."""
    return key_of(op, shape.input, shape.output, layer.stride, layer.residual_allowed)


def block_key(space: SearchSpace, label: str, op: OpSpec, resolution: int | None = None) -> LayerKey | None:
    """Key of layer ``label`` running ``op`` (``None`` for zero)."""
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    return _layer_key(space.layer(label), op, shapes[label])


@singledispatch
def space_keys(space: SearchSpace, resolution: int | None = None) -> SpaceKeys:
    """All keys of ``space`` at ``resolution`` (default: the space's), from :func:`infer_shapes`.

    A chain gives :class:`SpaceKeys`, a graph space :class:`GraphSpaceKeys`."""
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    stem, head = shapes["stem"], shapes["head"]
    fixed = [key_of(space.stem.op, stem.input, stem.output, space.stem.stride)]
    searched = []
    for layer in space.layers:
        keys = tuple(_layer_key(layer, op, shapes[layer.label]) for op in layer.candidates)
        if layer.searchable:
            searched.append(keys)
        elif keys[0] is not None:
            fixed.append(keys[0])
    fixed.append(key_of(space.head.conv_op, head.input, head.output))
    fixed.append(key_of(space.head.classifier_op, head.output, Shape(1, 1, space.head.num_classes)))
    return SpaceKeys(tuple(fixed), tuple(searched))


@singledispatch
def arch_keys(space: SearchSpace, arch: Arch, resolution: int | None = None) -> list[LayerKey]:
    """The keys of one architecture in chain order, fixed parts included, zero layers left out
    (a graph space: every non-zero edge in edge order, then the head)."""
    arch.validate(space)
    keys = space_keys(space, resolution)
    stem, head, classifier = keys.fixed[0], keys.fixed[-2], keys.fixed[-1]
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    body = [_layer_key(layer, op, shapes[layer.label]) for layer, op in zip(space.layers, arch.ops(space))]
    return [stem, *(k for k in body if k is not None), head, classifier]


# -- graph spaces ------------------------------------------------------------------------------
def edge_key(op: OpSpec, edge: Edge, src: Shape, dst: Shape) -> LayerKey | None:
    """Key of ``op`` on ``edge`` from node shape ``src`` to ``dst`` (``None`` for zero)."""
    return key_of(op, src, dst, edge.stride)


def graph_head_key(space: GraphSpace, resolution: int | None = None) -> LayerKey:
    """The head's key: ``pool_head`` (BN-ReLU-pool-linear) or ``classifier`` (pool-linear)."""
    shape = space.node_shapes(resolution)[space.output]
    return key_of(space.head.op, shape, Shape(1, 1, space.head.num_classes))


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
