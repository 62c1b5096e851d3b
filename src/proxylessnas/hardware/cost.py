"""One cost-model interface for latency tables, the learned predictor and MACs/params.

Expected cost of the supernet (the paper's latency loss term), differentiable in the
probabilities::

    E[cost] = fixed + sum_l sum_j p_lj * c_lj

where ``fixed`` prices the stem, the fixed layers, the head and the classifier, and ``c_lj`` is
the cost of candidate j of searched layer l at that layer's shape (zero costs 0). In a graph space
(``space/graph.py``) l is a decision and ``c_lj`` sums candidate j's key over every edge taking l;
``fixed`` prices the fixed edges and the head. The same ``KeyCostModel`` (and so
:class:`TableCostModel` and the predictor's model) prices chains and graphs alike, through
:func:`~proxylessnas.hardware.keys.space_keys` and :func:`~proxylessnas.hardware.keys.arch_keys`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.flops import key_params_macs
from proxylessnas.hardware.keys import LayerKey, arch_keys, space_keys
from proxylessnas.hardware.lut import LatencyTable
from proxylessnas.space.arch import Arch
from proxylessnas.space.spec import SearchSpace


@runtime_checkable
class CostModel(Protocol):
    unit: str

    def cost(self, key: LayerKey) -> float: ...

    def arch_cost(self, space: SearchSpace, arch: Arch) -> float: ...

    def candidate_costs(self, space: SearchSpace) -> tuple[float, list[torch.Tensor]]: ...

    def expected_cost(self, space: SearchSpace, probs: Sequence[torch.Tensor]) -> torch.Tensor: ...


class KeyCostModel:
    """Builds ``arch_cost``, ``candidate_costs`` and ``expected_cost`` on a per-key ``cost``.

    Subclasses define ``cost(key)``; ``per_network`` is added once per network (a predictor's
    intercept); ``check_space`` refuses a space the model was not made for.
    """

    unit = ""
    per_network = 0.0

    def cost(self, key: LayerKey) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_space(self, space: SearchSpace) -> None:
        """Raise when the model cannot price ``space`` (e.g. a table for another target)."""

    def require(self, keys: Sequence[LayerKey]) -> None:
        """Raise, listing every missing key, when some keys cannot be priced."""

    def arch_cost(self, space: SearchSpace, arch: Arch) -> float:
        """Cost of one architecture, stem, fixed layers, head and classifier included."""
        self.check_space(space)
        keys = arch_keys(space, arch)
        self.require(keys)
        return float(sum(self.cost(k) for k in keys) + self.per_network)

    def candidate_costs(self, space: SearchSpace) -> tuple[float, list[torch.Tensor]]:
        """(fixed cost, per searched layer or decision a float64 vector of candidate costs; zero = 0).

        A graph space's candidate cost sums the keys of every edge taking the decision (shared
        cells: each key priced once, counted once per edge)."""
        self.check_space(space)
        keys = space_keys(space)
        self.require(keys.unique())
        fixed = float(sum(self.cost(k) for k in keys.fixed) + self.per_network)
        prices: dict[LayerKey, float] = {}

        def price(key: LayerKey) -> float:
            if key not in prices:
                prices[key] = self.cost(key)
            return prices[key]

        vectors = [torch.tensor([sum((price(k) for k in cand), 0.0) for cand in decision],
                                dtype=torch.float64) for decision in keys.candidate_keys()]
        return fixed, vectors

    def expected_cost(self, space: SearchSpace, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``fixed + sum_l <p_l, c_l>``, differentiable in ``probs`` (one vector per searched layer)."""
        fixed, vectors = self._cached_candidate_costs(space)
        if len(probs) != len(vectors):
            raise ProxylessError(f"{len(probs)} probability vectors for {len(vectors)} searched layers",
                                 "expected_cost", "give one vector per searched layer")
        total = None
        for p, c in zip(probs, vectors):
            if p.shape[-1] != c.shape[0]:
                raise ProxylessError(f"probability vector of length {p.shape[-1]} for {c.shape[0]} "
                                     "candidates", "expected_cost", "give one entry per candidate")
            term = (p * c.to(device=p.device, dtype=p.dtype)).sum(-1)
            total = term if total is None else total + term
        if total is None:
            return torch.tensor(fixed, dtype=torch.float64)
        return total + fixed

    def _cached_candidate_costs(self, space: SearchSpace) -> tuple[float, list[torch.Tensor]]:
        cache = self.__dict__.setdefault("_candidate_cache", {})
        if space not in cache:
            cache[space] = self.candidate_costs(space)
        return cache[space]


class TableCostModel(KeyCostModel):
    """Latency from a measured table; strict lookups (missing keys are listed in the error)."""

    def __init__(self, table: LatencyTable, batch_size: int | None = None) -> None:
        self.table = table
        self.unit = table.unit
        self.batch_size = batch_size

    def cost(self, key: LayerKey) -> float:
        return self.table.lookup(key)

    def check_space(self, space: SearchSpace) -> None:
        self.table.check_target(space, batch_size=self.batch_size)

    def require(self, keys: Sequence[LayerKey]) -> None:
        self.table.require(keys)


class FlopsCostModel(KeyCostModel):
    """Multiply-accumulates (unit MMACs) or parameters (unit Mparams) of each block."""

    def __init__(self, metric: str = "macs") -> None:
        if metric not in ("macs", "params"):
            raise ProxylessError(f"unknown metric '{metric}'", "flops cost model", "use macs or params")
        self.metric = metric
        self.unit = "MMACs" if metric == "macs" else "Mparams"

    def cost(self, key: LayerKey) -> float:
        params, macs = key_params_macs(key)
        return (macs if self.metric == "macs" else params) / 1e6
