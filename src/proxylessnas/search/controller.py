"""Target-latency controller: land the derived (argmax) architecture on a latency target in ONE run.

The architecture loss is an augmented Lagrangian of the constraint ``g = E[LAT] / T_aim - 1 = 0``::

    loss = CE + lambda * g + (rho / 2) * g^2,          rho = penalty_factor * (|lambda| + weight_scale)

Two loops move the constraint:

1. after every architecture step, dual ascent on lambda (relative step, so that it finds the
   right order of magnitude, 0.01 or 10, in a few dozen steps whatever the unit of CE and cost)::

       lambda <- clip(lambda + step_size * g * (|lambda| + weight_scale), lambda_min, max_weight)

2. at the end of every epoch, the argmax architecture (what would be derived) is checked; if its
   cost A misses the inner band around the goal, the aim for the expectation is corrected::

       T_aim <- clip(T_aim * (goal / A)^(1/2), goal * (1 - 3 tolerance), goal * (1 + 3 tolerance))

Modes: ``band`` accepts |A / T - 1| <= tolerance (goal T, lambda of either sign); ``under``
accepts A <= T (goal T * (1 - tolerance / 2), lambda >= 0, the quadratic term only above the aim,
and no aim correction while the constraint is inactive: lambda = 0 and A under T).

Why this shape: plain dual ascent (``CE + lambda g``, lambda integrating the miss) oscillates on
this problem. The CE is nearly linear in p, so Adam pushes the alphas to a vertex and keeps
separating them; flipping an argmax later takes ever longer, lambda winds up and overshoots.
In measurements on the toy problem of tests/test_controller.py, plain dual ascent on the
argmax cost or on E[LAT] landed 3-6 of 10 targets in the +-5% band; the quadratic term adds the
missing proportional action (E[LAT] settles at T_aim with one layer left mixed between two
candidates) and the per-epoch aim correction closes the remaining gap between E[LAT] and the
argmax cost: 14 of 14 targets (both modes) landed.

:func:`constrained_argmax` is an explicit last resort for a discrete gap (no argmax near the
band): the most probable architecture whose cost lies in the band, by dynamic programming over
layers. Callers must report when they use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from proxylessnas.errors import ProxylessError
from proxylessnas.search.band import LatencyBand
from proxylessnas.search.losses import LossDetails


def _costs(per_layer_costs: Sequence[Tensor]) -> list[Tensor]:
    return [torch.as_tensor(c, dtype=torch.float64).detach().reshape(-1) for c in per_layer_costs]


def cheapest_cost(fixed: float, per_layer_costs: Sequence[Tensor]) -> float:
    """Cost of the cheapest architecture: fixed + sum_l min_j c_lj."""
    return float(fixed) + sum(float(c.min()) for c in _costs(per_layer_costs))


def most_expensive_cost(fixed: float, per_layer_costs: Sequence[Tensor]) -> float:
    """Cost of the most expensive architecture: fixed + sum_l max_j c_lj."""
    return float(fixed) + sum(float(c.max()) for c in _costs(per_layer_costs))


def arch_cost(fixed: float, per_layer_costs: Sequence[Tensor], indices: Sequence[int]) -> float:
    """Cost of one architecture given one candidate index per searched layer."""
    costs = _costs(per_layer_costs)
    if len(indices) != len(costs):
        raise ValueError(f"{len(indices)} indices for {len(costs)} layers")
    return float(fixed) + sum(float(c[int(i)]) for c, i in zip(costs, indices))


def argmax_indices(weights: Sequence[Tensor]) -> list[int]:
    """Argmax per layer of alphas or probabilities (the same thing: softmax is monotone)."""
    return [int(torch.as_tensor(w).detach().argmax()) for w in weights]


def argmax_cost(fixed: float, per_layer_costs: Sequence[Tensor], weights: Sequence[Tensor]) -> float:
    """Cost of the architecture that would be derived now (argmax of alphas or probs)."""
    return arch_cost(fixed, per_layer_costs, argmax_indices(weights))


@dataclass(frozen=True)
class TargetConfig:
    """What the user asks for: a target T, a mode (band | under) and a tolerance, whose
    :class:`~proxylessnas.search.band.LatencyBand` says what meets it, and the controller's knobs."""

    target: float
    mode: str = "band"
    tolerance: float = 0.05
    step_size: float = 0.1
    weight_scale: float = 0.1
    penalty_factor: float = 20.0
    initial_weight: float = 0.1
    max_weight: float = 1000.0

    def __post_init__(self) -> None:
        LatencyBand(self.target, self.tolerance, self.mode)  # checks target, mode and tolerance
        if min(self.step_size, self.weight_scale, self.penalty_factor, self.max_weight) <= 0:
            raise ProxylessError("step_size, weight_scale, penalty_factor and max_weight must be positive",
                                 "target controller",
                                 "give positive values")

    @property
    def band(self) -> LatencyBand:
        return LatencyBand(self.target, self.tolerance, self.mode)


def check_target(config: TargetConfig, fixed: float, per_layer_costs: Sequence[Tensor],
                 unit: str = "") -> None:
    """Refuse, before any training, a target that no architecture of the space can meet."""
    config.band.check_reachable(cheapest_cost(fixed, per_layer_costs),
                                most_expensive_cost(fixed, per_layer_costs), unit)


@dataclass(frozen=True)
class EpochCheck:
    """The argmax architecture's cost at the end of an epoch, against the target."""

    epoch: int
    cost: float
    weight: float
    aim: float
    accepted: bool


@dataclass
class LatencyController:
    """Augmented-Lagrangian controller: lambda (``weight``) by dual ascent, ``aim`` by epoch checks.

    Use: ``loss, details = controller.loss(ce, expected_latency)`` in every architecture step,
    ``controller.update(float(expected_latency))`` after the optimiser step, and
    ``controller.check_epoch(epoch, argmax_cost)`` at the end of each epoch.
    """

    config: TargetConfig
    weight: float = field(default=float("nan"))
    aim: float = field(default=float("nan"))
    updates: int = 0
    history: list[EpochCheck] = field(default_factory=list)

    def __post_init__(self) -> None:
        if math.isnan(self.weight):
            self.weight = self.config.initial_weight
        if math.isnan(self.aim):
            self.aim = self.config.band.goal

    @property
    def min_weight(self) -> float:
        return -self.config.max_weight if self.config.mode == "band" else 0.0

    @property
    def penalty_weight(self) -> float:
        """rho = penalty_factor * (|lambda| + weight_scale)."""
        return self.config.penalty_factor * (abs(self.weight) + self.config.weight_scale)

    def constraint(self, expected_latency: Tensor) -> Tensor:
        """g = E[LAT] / T_aim - 1 (differentiable in the alphas)."""
        return expected_latency / self.aim - 1.0

    def loss(self, ce: Tensor, expected_latency: Tensor) -> tuple[Tensor, LossDetails]:
        """``CE + lambda g + (rho / 2) g^2`` (``under``: the square only where g > 0)."""
        g = self.constraint(expected_latency)
        squared = g if self.config.mode == "band" else torch.relu(g)
        term = self.weight * g + 0.5 * self.penalty_weight * squared * squared
        loss = ce + term
        details = {"ce": float(ce.detach()), "expected_latency": float(expected_latency.detach()),
                   "target": self.config.target, "aim": self.aim, "lambda": self.weight,
                   "latency_term": float(term.detach()), "loss": float(loss.detach())}
        return loss, details

    def update(self, expected_latency: float) -> float:
        """One relative dual-ascent step on lambda; returns the new lambda."""
        g = float(expected_latency) / self.aim - 1.0
        step = self.config.step_size * g * (abs(self.weight) + self.config.weight_scale)
        self.weight = min(self.config.max_weight, max(self.min_weight, self.weight + step))
        self.updates += 1
        return self.weight

    def check_epoch(self, epoch: int, argmax_cost: float) -> EpochCheck:
        """Record the argmax cost; correct the aim when it misses the inner band around the goal."""
        cost = float(argmax_cost)
        band = self.config.band
        inactive = band.mode == "under" and self.weight == 0.0 and cost <= band.target
        if not inactive and not band.in_inner(cost):
            corrected = self.aim * math.sqrt(band.goal / cost)
            self.aim = min(band.aim_high, max(band.aim_low, corrected))
        check = EpochCheck(int(epoch), cost, self.weight, self.aim, band.accepts(cost))
        self.history.append(check)
        return check

    def state_dict(self) -> dict:
        return {"weight": self.weight, "aim": self.aim, "updates": self.updates,
                "history": [asdict(check) for check in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.weight = float(state["weight"])
        self.aim = float(state["aim"])
        self.updates = int(state["updates"])
        self.history = [EpochCheck(**check) for check in state["history"]]


def constrained_argmax(log_probs: Sequence[Tensor], per_layer_costs: Sequence[Tensor], fixed: float,
                       low: float, high: float, resolution: float | None = None) -> list[int] | None:
    """The most probable architecture with ``low <= cost <= high``, or None if there is none.

    Dynamic programming over layers (a multiple-choice knapsack): states are partial costs rounded
    to ``resolution`` (default (high - low) / 1000), each keeping its most probable prefix; the
    final pick is checked against the exact cost. Rounding can only miss an architecture within
    ``layers * resolution`` of a band edge.
    """
    costs = _costs(per_layer_costs)
    scores = [torch.as_tensor(lp, dtype=torch.float64).detach().reshape(-1) for lp in log_probs]
    if len(scores) != len(costs):
        raise ValueError(f"{len(scores)} log-prob vectors for {len(costs)} layers")
    resolution = resolution or max(high - low, 1e-12) / 1000
    # state key: rounded partial cost -> (log-prob, exact partial cost, indices)
    states: dict[int, tuple[float, float, tuple[int, ...]]] = {0: (0.0, float(fixed), ())}
    for score, cost in zip(scores, costs):
        nxt: dict[int, tuple[float, float, tuple[int, ...]]] = {}
        for logp, partial, picks in states.values():
            for j in range(len(cost)):
                total = partial + float(cost[j])
                if total > high:
                    continue  # costs are non-negative: this prefix can only grow
                key = round(total / resolution)
                value = logp + float(score[j])
                if key not in nxt or value > nxt[key][0]:
                    nxt[key] = (value, total, picks + (j,))
        states = nxt
    feasible = [state for state in states.values() if low <= state[1] <= high]
    if not feasible:
        return None
    return list(max(feasible, key=lambda state: state[0])[2])
