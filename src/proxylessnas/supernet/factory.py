"""``build_supernet(space, ...)``: the supernet of any space kind (one registration per kind)."""

from __future__ import annotations

from functools import singledispatch

from proxylessnas.errors import ProxylessError
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.spec import SearchSpace
from proxylessnas.supernet.base import DecisionSuperNet
from proxylessnas.supernet.graph_supernet import GraphSuperNet
from proxylessnas.supernet.supernet import SuperNet


@singledispatch
def build_supernet(space, num_classes: int | None = None, mixed_op: str = "binary") -> DecisionSuperNet:
    """The supernet of ``space``: :class:`SuperNet` for a chain, :class:`GraphSuperNet` for a graph."""
    raise ProxylessError(f"no supernet for a space of type {type(space).__name__}", "supernet",
                         "give a chain or graph space (proxylessnas.get_space)")


@build_supernet.register
def _chain(space: SearchSpace, num_classes: int | None = None, mixed_op: str = "binary") -> SuperNet:
    return SuperNet(space, num_classes, mixed_op=mixed_op)


@build_supernet.register
def _graph(space: GraphSpace, num_classes: int | None = None, mixed_op: str = "binary") -> GraphSuperNet:
    return GraphSuperNet(space, num_classes, mixed_op=mixed_op)
