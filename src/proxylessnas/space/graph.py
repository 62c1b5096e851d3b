"""A search space as a graph of decisions: nodes are feature maps, edges are ops.

A :class:`GraphSpace` is a DAG. ``nodes[0]`` is the input image; every other node is the sum of
its incoming edges' outputs, ``x_dst = sum_{e: src -> dst} op_e(x_src)``; the head reads the
``output`` node. An :class:`Edge` either has a fixed ``op`` or names a :class:`Decision`; every
edge naming one decision takes the op the arch chooses for it (one alpha vector of
``len(candidates)`` logits per decision, shared by all its edges). A zero op (``none`` or
``zero``) means the edge contributes 0; a node whose every incoming edge is zero is 0.

Two examples of the same model:

- a chain is the degenerate graph: one decision per layer, each used by exactly one edge;
- NAS-Bench-201 (``space/nasbench201.py``) is one cell's 6 decisions shared by 15 cells:
  90 searched edges, plus the fixed stem and the two residual reduction blocks.

Templates (a cell repeated) are expanded by presets only: a GraphSpace is always flat. Edges are
listed in topological order (by the position of their ``dst`` in ``nodes``), so walking them
once in order computes the net; spaces are plain data, modules are built from them
(``nets/graph_net.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.space.ops import (
    AvgPoolOp,
    BNOp,
    ChunkOp,
    MaxPoolOp,
    OpSpec,
    PadSkipOp,
    PoolHeadOp,
    PreConvOp,
    ResBlockOp,
    SkipOp,
    parse_op,
)
from proxylessnas.space.shapes import LayerShape, Shape, conv_output_size, infer_shapes, total_stride
from proxylessnas.space.spec import BNSpec, SearchSpace

GRAPH_SCHEMA_VERSION = 1
GRAPH_KIND = "proxylessnas.graph_space"


@dataclass(frozen=True)
class Decision:
    """One choice among ``candidates``, shared by every edge that names it.

    Like a chain's :class:`~proxylessnas.space.spec.LayerSpec` for consumers of
    ``space.decisions``: ``label``, ``candidates``, ``searchable``, ``index(op)``. A decision
    with one candidate is fixed (not searched)."""

    label: str
    candidates: tuple[OpSpec, ...]

    def __post_init__(self) -> None:
        if not self.label or not isinstance(self.label, str):
            raise ProxylessError("decision has no label", repr(self.label), "give it a label")
        if not self.candidates:
            raise ProxylessError("decision has no candidates", self.label, "give at least one op")
        if len(set(self.candidates)) != len(self.candidates):
            raise ProxylessError("duplicate candidates", self.label, "list each op once")

    @property
    def searchable(self) -> bool:
        return len(self.candidates) > 1

    def index(self, op: OpSpec) -> int:
        """Position of ``op`` in ``candidates`` (its alpha index)."""
        try:
            return self.candidates.index(op)
        except ValueError:
            allowed = ", ".join(c.token for c in self.candidates)
            raise ProxylessError(f"op '{op.token}' is not a candidate of decision {self.label}",
                                 self.label, f"choose one of {allowed}") from None


@dataclass(frozen=True)
class Edge:
    """``op(x_src)`` added into node ``dst``: ``in_chs -> out_chs`` at ``stride``.

    A fixed edge has ``op``; a searched edge names its ``decision`` (exactly one of the two)."""

    label: str
    src: str
    dst: str
    in_chs: int
    out_chs: int
    stride: int
    op: OpSpec | None = None
    decision: str | None = None

    def __post_init__(self) -> None:
        if (self.op is None) == (self.decision is None):
            raise ProxylessError("an edge has either a fixed op or a decision", self.label,
                                 "give exactly one of op= and decision=")
        if min(self.in_chs, self.out_chs, self.stride) < 1:
            raise ProxylessError("channels and stride must be >= 1", self.label,
                                 "fix the edge's in_chs, out_chs or stride")
        if self.op is not None:
            check_edge_op(self.op, self, self.label)

    @property
    def fixed(self) -> bool:
        return self.op is not None


def check_edge_op(op: OpSpec, edge: Edge, where: str) -> None:
    """Refuse an op that cannot run on ``edge`` (identity and pooling keep the channels)."""
    if isinstance(op, SkipOp) and (edge.stride != 1 or edge.in_chs != edge.out_chs):
        raise ProxylessError(f"'{op.token}' needs stride 1 and in == out channels "
                             f"(edge has {edge.in_chs} -> {edge.out_chs}, stride {edge.stride})",
                             where, "remove it from this edge's candidates")
    if isinstance(op, (AvgPoolOp, MaxPoolOp, BNOp)) and edge.in_chs != edge.out_chs:
        raise ProxylessError(f"'{op.token}' keeps the channels (edge has {edge.in_chs} -> "
                             f"{edge.out_chs})", where, "remove it from this edge's candidates")
    if isinstance(op, (BNOp, ChunkOp)) and edge.stride != 1:
        raise ProxylessError(f"'{op.token}' needs stride 1, not {edge.stride}", where, "use stride 1")
    if isinstance(op, ChunkOp) and (op.index + 1) * edge.out_chs > edge.in_chs:
        raise ProxylessError(f"'{op.token}' of {edge.out_chs} channels is past the input's {edge.in_chs}",
                             where, "give the chunk fewer channels or a smaller index")
    if isinstance(op, PadSkipOp) and edge.out_chs < edge.in_chs:
        raise ProxylessError(f"'{op.token}' only adds channels (edge has {edge.in_chs} -> {edge.out_chs})",
                             where, "give the edge at least as many output channels as input channels")
    if isinstance(op, PreConvOp) and (edge.in_chs % op.groups or edge.out_chs % op.groups):
        raise ProxylessError(f"'{op.token}' needs channels divisible by {op.groups} (edge has "
                             f"{edge.in_chs} -> {edge.out_chs})", where, "make the widths divisible")
    if isinstance(op, (ResBlockOp, PadSkipOp)) and edge.stride not in (1, 2):
        raise ProxylessError(f"'{op.token}' takes stride 1 or 2, not {edge.stride}", where,
                             "use stride 1 or 2")


@dataclass(frozen=True)
class GraphHead:
    """Classifier on the output node: BN + ReLU (when ``bn_relu``), global average pool,
    dropout, linear ``in_chs -> num_classes`` (with bias)."""

    in_chs: int
    num_classes: int
    bn_relu: bool = True
    dropout: float = 0.0

    @property
    def op(self) -> PoolHeadOp:
        return PoolHeadOp(self.bn_relu, self.dropout)


@dataclass(frozen=True)
class GraphSpace:
    """A named, flat DAG of edges; see the module docstring.

    ``all_decisions`` holds every decision (fixed ones included) in alpha order;
    :attr:`decisions` (= :attr:`searched_layers`) the searched ones. ``overrides`` records how
    the preset was customised."""

    name: str
    resolution: int
    in_chs: int
    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]
    all_decisions: tuple[Decision, ...]
    output: str
    head: GraphHead
    bn: BNSpec = BNSpec()
    overrides: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    schema_version: int = GRAPH_SCHEMA_VERSION

    def __post_init__(self) -> None:
        where = self.name
        if not self.nodes or len(set(self.nodes)) != len(self.nodes):
            raise ProxylessError("nodes must be a non-empty list of distinct labels", where,
                                 "give each node its own label; nodes[0] is the input")
        labels = [e.label for e in self.edges]
        if len(set(labels)) != len(labels) or "head" in labels:
            raise ProxylessError("duplicate or reserved edge labels", where,
                                 "give each edge its own label (not 'head')")
        names = [d.label for d in self.all_decisions]
        if len(set(names)) != len(names):
            raise ProxylessError("duplicate decision labels", where, "give each decision its own label")
        position = {node: i for i, node in enumerate(self.nodes)}
        decisions = {d.label: d for d in self.all_decisions}
        channels = {self.nodes[0]: self.in_chs}
        last_dst = 0
        for edge in self.edges:
            at = f"{where}: edge {edge.label}"
            if edge.src not in position or edge.dst not in position:
                raise ProxylessError(f"edge joins unknown node(s) {edge.src} -> {edge.dst}", at,
                                     "use labels listed in nodes")
            if position[edge.src] >= position[edge.dst]:
                raise ProxylessError(f"edge goes backwards ({edge.src} -> {edge.dst})", at,
                                     "list nodes in topological order")
            if position[edge.dst] < last_dst:
                raise ProxylessError("edges are not ordered by their destination node", at,
                                     "list the edges into each node after those of earlier nodes")
            last_dst = position[edge.dst]
            if channels.get(edge.src) != edge.in_chs:
                raise ProxylessError(f"edge expects {edge.in_chs} input channels, node {edge.src} "
                                     f"has {channels.get(edge.src)}", at, "make the widths agree")
            if channels.setdefault(edge.dst, edge.out_chs) != edge.out_chs:
                raise ProxylessError(f"edge gives {edge.out_chs} channels, node {edge.dst} has "
                                     f"{channels[edge.dst]}", at, "make the edges into a node agree")
            if edge.decision is not None:
                if edge.decision not in decisions:
                    raise ProxylessError(f"unknown decision '{edge.decision}'", at,
                                         f"use one of {', '.join(decisions) or '(none defined)'}")
                for op in decisions[edge.decision].candidates:
                    check_edge_op(op, edge, at)
        missing = [node for node in self.nodes[1:] if node not in channels]
        if missing:
            raise ProxylessError(f"node(s) without incoming edges: {', '.join(missing[:5])}", where,
                                 "give every node but the input at least one incoming edge")
        unused = sorted(set(decisions) - {e.decision for e in self.edges})
        if unused:
            raise ProxylessError(f"decision(s) used by no edge: {', '.join(unused)}", where,
                                 "remove them or name them on edges")
        if self.output not in position or self.output == self.nodes[0]:
            raise ProxylessError(f"output node '{self.output}' is not a computed node", where,
                                 "name a node other than the input")
        if self.head.in_chs != channels[self.output]:
            raise ProxylessError(f"head expects {self.head.in_chs} channels, output node has "
                                 f"{channels[self.output]}", where, "make the head width match")
        self.node_shapes()  # sizes of the edges into one node must agree

    # -- decisions ---------------------------------------------------------------------------
    @property
    def decisions(self) -> tuple[Decision, ...]:
        """The searched decisions, in alpha order."""
        return tuple(d for d in self.all_decisions if d.searchable)

    @property
    def searched_layers(self) -> tuple[Decision, ...]:
        """Alias of :attr:`decisions` for consumers written for chains."""
        return self.decisions

    @property
    def num_candidate_slots(self) -> int:
        """Number of architecture parameters: sum over searched decisions of len(candidates)."""
        return sum(len(d.candidates) for d in self.decisions)

    @property
    def num_architectures(self) -> int:
        """prod over searched decisions of len(candidates)."""
        return math.prod(len(d.candidates) for d in self.decisions)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def decision(self, label: str) -> Decision:
        for d in self.all_decisions:
            if d.label == label:
                return d
        raise ProxylessError(f"no decision '{label}'", self.name,
                             f"use one of {', '.join(d.label for d in self.all_decisions)}")

    def edges_of(self, label: str) -> tuple[Edge, ...]:
        """The edges that take decision ``label``'s op, in edge order."""
        self.decision(label)
        return tuple(e for e in self.edges if e.decision == label)

    def edge_indices_of(self, label: str) -> tuple[int, ...]:
        """Positions in :attr:`edges` of the edges that take decision ``label``'s op."""
        self.decision(label)
        return tuple(i for i, e in enumerate(self.edges) if e.decision == label)

    @property
    def searched_edges(self) -> tuple[Edge, ...]:
        """Edges whose decision is searched."""
        searched = {d.label for d in self.decisions}
        return tuple(e for e in self.edges if e.decision in searched)

    def edge(self, label: str) -> Edge:
        for e in self.edges:
            if e.label == label:
                return e
        raise ProxylessError(f"no edge '{label}'", self.name, "use a label listed by space.edges")

    def edge_ops(self, choices: Mapping[str, OpSpec]) -> tuple[OpSpec, ...]:
        """The op of every edge, in edge order: its fixed op or ``choices[decision]`` (a
        decision with one candidate may be left out of ``choices``)."""
        ops = []
        for e in self.edges:
            if e.op is not None:
                ops.append(e.op)
            elif e.decision in choices:
                ops.append(choices[e.decision])
            else:
                d = self.decision(e.decision)
                if d.searchable:
                    raise ProxylessError(f"no op chosen for decision {d.label}", self.name,
                                         "give one op for every searched decision")
                ops.append(d.candidates[0])
        return tuple(ops)

    def resolved(self, choices: Mapping[str, OpSpec]) -> GraphSpace:
        """The same graph with every edge fixed to its chosen op and no decisions."""
        edges = tuple(replace(e, op=op, decision=None) for e, op in zip(self.edges, self.edge_ops(choices)))
        return replace(self, edges=edges, all_decisions=(), overrides=dict(self.overrides))

    # -- shapes --------------------------------------------------------------------------------
    def node_shapes(self, resolution: int | None = None) -> dict[str, Shape]:
        """H x W x C of every node at input side ``resolution`` (default: the space's).

        An edge of stride s maps a side of n pixels to ``(n - 1) // s + 1`` (a 'same'-padded
        conv or pool with odd kernel); the edges into one node must agree."""
        side = resolution or self.resolution
        shapes = {self.nodes[0]: Shape(side, side, self.in_chs)}
        for edge in self.edges:
            src = shapes[edge.src]
            ops = (edge.op,) if edge.op is not None else self.decision(edge.decision).candidates
            pooled = [op for op in ops if isinstance(op, (ResBlockOp, PadSkipOp))]  # 2x2 pools floor
            if edge.stride == 2 and pooled and (src.height % 2 or src.width % 2):
                raise ProxylessError(f"{pooled[0].token} with stride 2 needs an even input side, gets "
                                     f"{src.height}x{src.width}", f"{self.name}: edge {edge.label}",
                                     "use an input resolution divisible by the total stride")
            out = Shape(conv_output_size(src.height, edge.stride),
                        conv_output_size(src.width, edge.stride), edge.out_chs)
            if shapes.setdefault(edge.dst, out) != out:
                raise ProxylessError(f"edge gives {out}, node {edge.dst} is {shapes[edge.dst]}",
                                     f"{self.name}: edge {edge.label}",
                                     "give the edges into a node the same stride")
        return shapes

    def infer_shapes(self, resolution: int | None = None) -> tuple[LayerShape, ...]:
        """One row per edge (``shapes[i]`` is ``edges[i]``, kind fixed|searched), then the head
        (output node -> 1 x 1 x num_classes)."""
        nodes = self.node_shapes(resolution)
        searched = {d.label for d in self.decisions}
        rows = [LayerShape(e.label, "searched" if e.decision in searched else "fixed",
                           nodes[e.src], nodes[e.dst]) for e in self.edges]
        rows.append(LayerShape("head", "head", nodes[self.output], Shape(1, 1, self.head.num_classes)))
        return tuple(rows)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": GRAPH_KIND,
            "schema_version": self.schema_version,
            "name": self.name,
            "overrides": dict(self.overrides),
            "resolution": self.resolution,
            "in_chs": self.in_chs,
            "nodes": list(self.nodes),
            "decisions": [{"label": d.label, "candidates": [op.token for op in d.candidates]}
                          for d in self.all_decisions],
            "edges": [{"label": e.label, "src": e.src, "dst": e.dst, "in_chs": e.in_chs,
                       "out_chs": e.out_chs, "stride": e.stride,
                       "op": None if e.op is None else e.op.token, "decision": e.decision}
                      for e in self.edges],
            "output": self.output,
            "head": vars(self.head).copy(),
            "bn": vars(self.bn).copy(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "space") -> GraphSpace:
        try:
            if data.get("kind") != GRAPH_KIND:
                raise ProxylessError("not a graph space description", where,
                                     "write it with GraphSpace.to_dict()")
            version = data.get("schema_version")
            if version != GRAPH_SCHEMA_VERSION:
                raise ProxylessError(f"unsupported graph space schema_version {version!r}", where,
                                     f"this version reads schema_version {GRAPH_SCHEMA_VERSION}")
            decisions = tuple(
                Decision(d["label"], tuple(parse_op(t, f"{where}: {d['label']}") for t in d["candidates"]))
                for d in data["decisions"])
            edges = tuple(
                Edge(d["label"], d["src"], d["dst"], int(d["in_chs"]), int(d["out_chs"]),
                     int(d["stride"]), None if d.get("op") is None else parse_op(d["op"], d["label"]),
                     d.get("decision"))
                for d in data["edges"])
            return cls(name=data["name"], resolution=int(data["resolution"]), in_chs=int(data["in_chs"]),
                       nodes=tuple(data["nodes"]), edges=edges, all_decisions=decisions,
                       output=data["output"], head=GraphHead(**data["head"]),
                       bn=BNSpec(**data.get("bn", {})), overrides=dict(data.get("overrides", {})))
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ProxylessError(f"malformed graph space description ({err})", where,
                                 "write it with GraphSpace.to_dict()") from None


@infer_shapes.register
def _graph_shapes(space: GraphSpace, resolution: int | None = None) -> tuple[LayerShape, ...]:
    return space.infer_shapes(resolution)


@total_stride.register
def _graph_stride(space: GraphSpace) -> int:
    strides = {space.nodes[0]: 1}
    for edge in space.edges:  # the edges into one node agree on its size (checked on creation)
        strides.setdefault(edge.dst, strides[edge.src] * edge.stride)
    return strides[space.output]


def space_from_dict(data: Any, where: str = "space") -> SearchSpace | GraphSpace:
    """A chain or graph space from its ``to_dict()`` form (told apart by ``kind``)."""
    if isinstance(data, dict) and data.get("kind") == GRAPH_KIND:
        return GraphSpace.from_dict(data, where)
    if not isinstance(data, dict):
        raise ProxylessError("a space description must be a JSON object", where,
                             "write it with space.to_dict()")
    return SearchSpace.from_dict(data, where)
