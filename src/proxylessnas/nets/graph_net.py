"""The standalone net of a graph space (``space/graph.py``): ``GraphNet`` from (space, arch).

Forward walks the edges in order; node ``dst`` = sum of its incoming edges' outputs, the input
node is the image, the head reads the output node. Zero edges (``none``/``zero``) are dropped: a
node whose every incoming edge is zero is ``zeros(B, C, H, W)`` of its shape.

Module layout (what derive-with-inheritance maps onto): ``net.edges`` is an ``nn.ModuleList``
aligned with ``space.edges``: ``net.edges[i]`` is the module of ``space.edges[i]``, ``None``
where that edge is zero (no module, no parameters, no state-dict keys). State-dict keys are
``edges.<i>.<module keys>`` and ``head.{bn,linear}.*``; the module of an op is what
:func:`build_op` returns, so a supernet that builds its candidates with :func:`build_op` can copy
the chosen candidate of its edge ``i`` into ``edges.<i>`` key for key.

Op registry (one entry per op family, dispatched on the OpSpec type): :func:`build_op` builds the
module of an op on an edge, :func:`op_params_macs` counts its parameters and MACs at an input
side; the net's MACs are the sum over edges plus the head, as ``torch.utils.flop_counter``
counts them (convs and linears; BN, ReLU, pooling and sums are free).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import singledispatch
from typing import Any

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.config import check_config_header
from proxylessnas.nets.net import build_net, register_net_kind
from proxylessnas.nets.profile import LayerProfile, _conv, profile_net
from proxylessnas.ops.blocks import MBConv
from proxylessnas.ops.cell_blocks import (
    ConvBN,
    Identity,
    PoolHead,
    ReLUConvBN,
    ResBlock,
    Zero,
    avg_pool,
    conv_bn_params_macs,
    identity_params_macs,
    pool_head_params_macs,
    pool_params_macs,
    relu_conv_bn_params_macs,
    res_block_params_macs,
    zero_params_macs,
)
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.ops import (
    AvgPoolOp,
    ConvBNOp,
    MBConvOp,
    NoneOp,
    ReLUConvBNOp,
    ResBlockOp,
    SkipOp,
    ZeroOp,
)
from proxylessnas.space.shapes import Shape
from proxylessnas.space.spec import BNSpec

GRAPH_NET_KIND = "proxylessnas.graph_net"
GRAPH_NET_SCHEMA_VERSION = 1
DEFAULT_BN = BNSpec(momentum=0.1, eps=1e-5)


# -- op registry -----------------------------------------------------------------------------------
@singledispatch
def build_op(op, in_chs: int, out_chs: int, stride: int, bn: BNSpec = DEFAULT_BN, *, affine: bool = True,
             track_running_stats: bool = True) -> nn.Module:
    """The module of ``op`` on an edge ``in_chs -> out_chs`` at ``stride``.

    ``affine``/``track_running_stats`` configure the BNs of the cell ops (a supernet may turn
    them off as the benchmark's search nets do; a conv then gets a bias)."""
    raise ProxylessError(f"op '{getattr(op, 'token', op)}' cannot be built on a graph edge",
                         "graph net", "use a cell, skeleton or MBConv op")


@build_op.register(ZeroOp)
@build_op.register(NoneOp)
def _build_zero(op, in_chs, out_chs, stride, bn=DEFAULT_BN, *, affine=True, track_running_stats=True):
    return Zero(out_chs, stride)


@build_op.register
def _build_skip(op: SkipOp, in_chs, out_chs, stride, bn=DEFAULT_BN, *, affine=True,
                track_running_stats=True):
    return Identity()


@build_op.register
def _build_pool(op: AvgPoolOp, in_chs, out_chs, stride, bn=DEFAULT_BN, *, affine=True,
                track_running_stats=True):
    return avg_pool(op.kernel_size, stride)


_CONV_BN_BLOCKS = {ReLUConvBNOp: ReLUConvBN, ConvBNOp: ConvBN, ResBlockOp: ResBlock}
"""Op families built of convs with BatchNorm: one constructor signature for all of them."""


def _build_conv_bn_block(op, in_chs, out_chs, stride, bn=DEFAULT_BN, *, affine=True,
                         track_running_stats=True):
    return _CONV_BN_BLOCKS[type(op)](in_chs, out_chs, op.kernel_size, stride, affine=affine,
                                     track_running_stats=track_running_stats, bn_momentum=bn.momentum,
                                     bn_eps=bn.eps)


for _kind in _CONV_BN_BLOCKS:
    build_op.register(_kind)(_build_conv_bn_block)


@build_op.register
def _build_mbconv(op: MBConvOp, in_chs, out_chs, stride, bn=DEFAULT_BN, *, affine=True,
                  track_running_stats=True):
    return MBConv(in_chs, out_chs, op.kernel_size, stride, op.expand_ratio, bn.momentum, bn.eps)


@singledispatch
def op_params_macs(op, in_chs: int, out_chs: int, stride: int, h: int, w: int,
                   affine: bool = True) -> tuple[int, int]:
    """(parameters, MACs) of :func:`build_op`'s module at an ``h x w`` input."""
    raise ProxylessError(f"no cost formula for op '{getattr(op, 'token', op)}'", "graph net",
                         "use a cell, skeleton or MBConv op")


op_params_macs.register(ZeroOp)(lambda op, i, o, s, h, w, affine=True: zero_params_macs())
op_params_macs.register(NoneOp)(lambda op, i, o, s, h, w, affine=True: zero_params_macs())
op_params_macs.register(SkipOp)(lambda op, i, o, s, h, w, affine=True: identity_params_macs())
op_params_macs.register(AvgPoolOp)(lambda op, i, o, s, h, w, affine=True: pool_params_macs())
op_params_macs.register(ReLUConvBNOp)(
    lambda op, i, o, s, h, w, affine=True: relu_conv_bn_params_macs(i, o, op.kernel_size, s, h, w, affine))
op_params_macs.register(ConvBNOp)(
    lambda op, i, o, s, h, w, affine=True: conv_bn_params_macs(i, o, op.kernel_size, s, h, w, affine))
op_params_macs.register(ResBlockOp)(
    lambda op, i, o, s, h, w, affine=True: res_block_params_macs(i, o, op.kernel_size, s, h, w, affine))


@op_params_macs.register
def _mbconv_params_macs(op: MBConvOp, in_chs, out_chs, stride, h, w, affine=True):
    mid, params, macs = in_chs * op.expand_ratio, 0, 0
    if op.expand_ratio > 1:
        p, m, h, w = _conv(h, w, in_chs, mid, 1, 1)
        params, macs = params + p, macs + m
    p, m, h, w = _conv(h, w, mid, mid, op.kernel_size, stride, groups=mid)
    params, macs = params + p, macs + m
    p, m, h, w = _conv(h, w, mid, out_chs, 1, 1)
    return params + p, macs + m


# -- config -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphNetConfig:
    """What a graph net is rebuilt from: its space with every edge fixed (no decisions), a name."""

    space: GraphSpace
    name: str = ""

    def __post_init__(self) -> None:
        if self.space.all_decisions:
            raise ProxylessError("a net config's edges must all be fixed", self.space.name,
                                 "build it with graph_net_config(space, arch)")

    @property
    def resolution(self) -> int:
        return self.space.resolution

    @property
    def in_chs(self) -> int:
        return self.space.in_chs

    @property
    def num_classes(self) -> int:
        return self.space.head.num_classes

    @property
    def dropout(self) -> float:
        return self.space.head.dropout

    def op_labels(self) -> list[str]:
        """``label:token`` of every non-zero edge, e.g. ``s1.c0.1<-0:nor_conv_3x3``."""
        return [f"{e.label}:{e.op.token}" for e in self.space.edges if not e.op.is_zero]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": GRAPH_NET_KIND, "schema_version": GRAPH_NET_SCHEMA_VERSION, "name": self.name,
                "space": self.space.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "net config") -> GraphNetConfig:
        check_config_header(data, GRAPH_NET_KIND, GRAPH_NET_SCHEMA_VERSION, "graph net", "GraphNet.config()",
                            where)
        if not isinstance(data.get("space"), dict):
            raise ProxylessError("graph net config has no space", where,
                                 "write it with GraphNet.config()")
        return cls(GraphSpace.from_dict(data["space"], where), str(data.get("name", "")))


def graph_net_config(space: GraphSpace, arch: Arch, num_classes: int | None = None,
                     dropout: float | None = None, name: str = "") -> GraphNetConfig:
    """The standalone net of ``arch`` in ``space``: every edge fixed to its chosen op."""
    arch.validate(space)
    fixed = space.resolved(arch.choices)
    head = replace(fixed.head, num_classes=fixed.head.num_classes if num_classes is None else num_classes,
                   dropout=fixed.head.dropout if dropout is None else dropout)
    return GraphNetConfig(replace(fixed, head=head, overrides=dict(fixed.overrides)), name)


# -- net ----------------------------------------------------------------------------------------
class GraphNet(nn.Module):
    """Edges summed into nodes, then the head; ``config()`` rebuilds the same module.

    ``edges[i]`` is the module of ``space.edges[i]`` (``None`` for a zero edge); ``head`` is
    :class:`~proxylessnas.ops.cell_blocks.PoolHead`. Weights keep PyTorch's default
    initialisation (as the benchmark's nets)."""

    def __init__(self, config: GraphNetConfig) -> None:
        super().__init__()
        self._config = config
        space = config.space
        self.edges = nn.ModuleList([
            None if edge.op.is_zero else build_op(edge.op, edge.in_chs, edge.out_chs, edge.stride, space.bn)
            for edge in space.edges])
        self.head = PoolHead(space.head.in_chs, space.head.num_classes, space.head.bn_relu,
                             space.head.dropout, bn_momentum=space.bn.momentum, bn_eps=space.bn.eps)
        position = {node: i for i, node in enumerate(space.nodes)}
        # per computed node: (node index, [(edge index, src index)], zero fallback (src, chs, stride))
        plan: dict[int, list[tuple[int, int]]] = {}
        for i, edge in enumerate(space.edges):
            plan.setdefault(position[edge.dst], []).append((i, position[edge.src]))
        self._plan = [(node, [(i, src) for i, src in inputs if self.edges[i] is not None],
                       (inputs[0][1], space.edges[inputs[0][0]].out_chs, space.edges[inputs[0][0]].stride))
                      for node, inputs in plan.items()]
        self._num_nodes = len(space.nodes)
        self._output = position[space.output]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output node's feature map."""
        values: list[torch.Tensor | None] = [x] + [None] * (self._num_nodes - 1)
        for node, inputs, (src, chs, stride) in self._plan:
            total = None
            for i, j in inputs:
                out = self.edges[i](values[j])
                total = out if total is None else total + out
            if total is None:
                ref = values[src]
                total = ref.new_zeros(ref.shape[0], chs, (ref.shape[2] - 1) // stride + 1,
                                      (ref.shape[3] - 1) // stride + 1)
            values[node] = total
        return values[self._output]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    @property
    def net_config(self) -> GraphNetConfig:
        return self._config

    def config(self) -> dict[str, Any]:
        """Versioned plain-data config; ``GraphNet.from_config(net.config())`` rebuilds it."""
        return self._config.to_dict()

    @classmethod
    def from_config(cls, config: dict[str, Any] | GraphNetConfig) -> GraphNet:
        return cls(config if isinstance(config, GraphNetConfig) else GraphNetConfig.from_dict(config))


@build_net.register
def _build_graph_net(space: GraphSpace, arch: Arch, num_classes: int | None = None,
                     dropout: float | None = None, name: str = "") -> GraphNet:
    return GraphNet(graph_net_config(space, arch, num_classes, dropout, name))


register_net_kind(GRAPH_NET_KIND, GraphNet.from_config)


# -- profile ------------------------------------------------------------------------------------
@profile_net.register
def profile_graph_net(config: GraphNetConfig, resolution: int | None = None) -> list[LayerProfile]:
    """One row per edge (zero edges: 0 / 0), in edge order, then the head."""
    space = config.space
    nodes = space.node_shapes(resolution)
    rows = []
    for edge in space.edges:
        src, dst = nodes[edge.src], nodes[edge.dst]
        params, macs = op_params_macs(edge.op, edge.in_chs, edge.out_chs, edge.stride, src.height, src.width)
        rows.append(LayerProfile(edge.label, edge.op.token, src, dst, params, macs))
    head = space.head
    params, macs = pool_head_params_macs(head.in_chs, head.num_classes, head.bn_relu)
    rows.append(LayerProfile("head", "bn_relu_pool_linear" if head.bn_relu else "pool_linear",
                             nodes[space.output], Shape(1, 1, head.num_classes), params, macs))
    return rows
