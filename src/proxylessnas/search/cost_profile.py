"""The cost profile of a space under a cost model: what every candidate of every searched layer
costs, and from that the cost of an architecture and the expected cost of a distribution.

    cost(a)  = fixed + sum_l c_l[a_l]                (one candidate index per searched layer)
    E[LAT]   = fixed + sum_l <p_l, c_l>              (differentiable in the probabilities p)
    span     = [fixed + sum_l min_j c_lj, fixed + sum_l max_j c_lj]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from proxylessnas.search.controller import arch_cost, cheapest_cost, most_expensive_cost
from proxylessnas.space.spec import SearchSpace


class CostProfile:
    """``fixed`` and ``candidate_costs`` (one vector per searched layer) of ``space`` priced by
    ``cost_model``, in its ``unit`` (table units: a latency table's ms, MMACs, Mparams)."""

    def __init__(self, space: SearchSpace, cost_model: Any) -> None:
        self.space = space
        self.cost_model = cost_model
        self.unit = getattr(cost_model, "unit", "")
        self.fixed, self.candidate_costs = cost_model.candidate_costs(space)
        self.cheapest = cheapest_cost(self.fixed, self.candidate_costs)
        self.most_expensive = most_expensive_cost(self.fixed, self.candidate_costs)

    def at_position(self, position: float) -> float:
        """cheapest + position * (most expensive - cheapest)."""
        return self.cheapest + position * (self.most_expensive - self.cheapest)

    def expected(self, probs: Sequence[Tensor]) -> Tensor:
        """E[LAT] = fixed + sum_l <p_l, c_l>, differentiable in ``probs``."""
        return self.cost_model.expected_cost(self.space, probs)

    def cost_of(self, indices: Sequence[int]) -> float:
        """Predicted cost of one architecture (candidate index per searched layer)."""
        return arch_cost(self.fixed, self.candidate_costs, indices)
