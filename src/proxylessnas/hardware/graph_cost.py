"""MACs and parameters of graph spaces (``space/graph.py``) as a cost model.

Per searched decision d and candidate j the cost sums over every edge e that takes d::

    c_dj = sum_{e in edges(d)} cost(op_j on e),   fixed = sum_{fixed edges} cost + head

so ``E[cost] = fixed + sum_d <p_d, c_d>`` stays linear in the probabilities (the same
:meth:`~proxylessnas.hardware.cost.KeyCostModel.expected_cost` as for chains). Costs come from
the op registry's analytic counts (:func:`~proxylessnas.nets.op_registry.op_params_macs`, the way
``torch.utils.flop_counter`` counts MACs).

Measured latency of graph spaces needs no class of its own: the key-based models
(:class:`~proxylessnas.hardware.cost.TableCostModel`, the predictor's) price a graph through its
edge keys (``hardware/keys.py``), with the same fixed + per-decision sums.
"""

from __future__ import annotations

import torch

from proxylessnas.hardware.cost import FlopsCostModel
from proxylessnas.nets.op_registry import op_params_macs
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import GraphSpace


class GraphFlopsCostModel(FlopsCostModel):
    """Multiply-accumulates (unit MMACs) or parameters (unit Mparams) of a graph space's edges."""

    def _op_cost(self, op, in_chs: int, out_chs: int, stride: int, side: int) -> float:
        params, macs = op_params_macs(op, in_chs, out_chs, stride, side, side)
        return (macs if self.metric == "macs" else params) / 1e6

    def _edge_cost(self, space: GraphSpace, op, edge, side: int) -> float:
        return self._op_cost(op, edge.in_chs, edge.out_chs, edge.stride, side)

    def _fixed_and_sides(self, space: GraphSpace) -> tuple[float, dict[str, int]]:
        nodes = space.node_shapes()
        sides = {node: shape.height for node, shape in nodes.items()}
        head = space.head
        fixed = self._op_cost(head.op, head.in_chs, head.num_classes, 1, sides[space.output])
        searched = {d.label for d in space.decisions}
        for edge in space.edges:
            if edge.decision not in searched:
                op = edge.op if edge.op is not None else space.decision(edge.decision).candidates[0]
                fixed += self._edge_cost(space, op, edge, sides[edge.src])
        return fixed, sides

    def candidate_costs(self, space: GraphSpace) -> tuple[float, list[torch.Tensor]]:
        """(fixed cost, per searched decision a float64 vector: its candidates summed over its edges)."""
        fixed, sides = self._fixed_and_sides(space)
        vectors = []
        for decision in space.decisions:
            edges = space.edges_of(decision.label)
            vectors.append(torch.tensor([sum(self._edge_cost(space, op, e, sides[e.src]) for e in edges)
                                         for op in decision.candidates], dtype=torch.float64))
        return fixed, vectors

    def arch_cost(self, space: GraphSpace, arch: Arch) -> float:
        """Cost of one architecture, fixed edges and head included."""
        arch.validate(space)
        fixed, vectors = self.candidate_costs(space)
        return fixed + sum(float(v[i]) for v, i in zip(vectors, arch.indices(space)))
