"""The standalone net of a graph space (``space/graph.py``): ``GraphNet`` from (space, arch).

Forward walks the edges in order; node ``dst`` = sum of its incoming edges' outputs, the input
node is the image, the head reads the output node. Zero edges (``none``/``zero``) are dropped: a
node whose every incoming edge is zero is ``zeros(B, C, H, W)`` of its shape.

Module layout (what derive-with-inheritance maps onto): ``net.edges`` is an ``nn.ModuleList``
aligned with ``space.edges``: ``net.edges[i]`` is the module of ``space.edges[i]``, ``None``
where that edge is zero (no module, no parameters, no state-dict keys). State-dict keys are
``edges.<i>.<module keys>`` and ``head.{bn,linear}.*``.

Every edge's module and the head are built by the op registry
(:func:`~proxylessnas.nets.op_registry.build_op`), so a supernet that builds its candidates with
it copies the chosen candidate of its edge ``i`` into ``edges.<i>`` key for key; the registry
counts them too (:func:`~proxylessnas.nets.op_registry.op_params_macs`): the net's MACs are the
sum over edges plus the head, as ``torch.utils.flop_counter`` counts them (convs and linears; BN,
ReLU, pooling and sums are free).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.config import check_config_header
from proxylessnas.nets.drop_path import drop_path_units, edge_units, keep_factors
from proxylessnas.nets.net import build_net, register_net_kind
from proxylessnas.nets.op_registry import build_op, op_params_macs
from proxylessnas.nets.profile import LayerProfile, profile_net
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.shapes import Shape

GRAPH_NET_KIND = "proxylessnas.graph_net"
GRAPH_NET_SCHEMA_VERSION = 1


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
    initialisation (as the benchmark's nets). In training mode with ``drop_path_rate`` > 0 the
    space's drop-path units (``drop_path_units``, ``nets/drop_path.py``) are dropped per image."""

    def __init__(self, config: GraphNetConfig) -> None:
        super().__init__()
        self._config = config
        space = config.space
        self.edges = nn.ModuleList([
            None if edge.op.is_zero else build_op(edge.op, edge.in_chs, edge.out_chs, edge.stride, space.bn)
            for edge in space.edges])
        self.head = build_op(space.head.op, space.head.in_chs, space.head.num_classes, 1, space.bn)
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
        self.drop_path_units = drop_path_units(space)
        self._edge_units = edge_units(self.drop_path_units)
        self.drop_path_rate = 0.0  # set per step by the training loop; used in training mode only

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output node's feature map."""
        values: list[torch.Tensor | None] = [x] + [None] * (self._num_nodes - 1)
        keep = None
        if self.training and self.drop_path_rate > 0 and self.drop_path_units:
            keep = keep_factors(len(self.drop_path_units), x.shape[0], self.drop_path_rate, x.device)
        for node, inputs, (src, chs, stride) in self._plan:
            total = None
            for i, j in inputs:
                out = self.edges[i](values[j])
                if keep is not None and i in self._edge_units:
                    factor = keep[self._edge_units[i][0]]
                    for u in self._edge_units[i][1:]:
                        factor = factor * keep[u]
                    out = out * factor.to(out.dtype).view(-1, *([1] * (out.dim() - 1)))
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
    head, src = space.head, nodes[space.output]
    params, macs = op_params_macs(head.op, head.in_chs, head.num_classes, 1, src.height, src.width)
    rows.append(LayerProfile("head", head.op.token, src, Shape(1, 1, head.num_classes), params, macs))
    return rows
