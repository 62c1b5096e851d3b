"""The latency band of a target: which costs meet a target T with tolerance t, and the wider
and narrower bands the controller and the final selection work with.

Modes: ``band`` accepts ``T (1 - t) <= cost <= T (1 + t)``; ``under`` accepts ``cost <= T``.
Every band of the search is derived here from (T, t, mode), in whatever unit T is given
(table units for the controller, measured ms for the final measurement)::

    accepted:   band [T (1 - t), T (1 + t)]             under [0, T]
    goal:       band T                                  under T (1 - t / 2)
    inner:      [goal (1 - t / 2), goal (1 + t / 2)]    (room for prediction error)
    aim limits: [goal (1 - 3 t), goal (1 + 3 t)]        (the controller's aim correction)
    proposals:  band [T (1 - 1.5 t), T (1 + 1.5 t)]     under [T (1 - 3 t), T]
                (where the final selection looks for architectures to measure)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from proxylessnas.errors import ProxylessError

MODES = ("band", "under")


@dataclass(frozen=True)
class LatencyBand:
    """A target ``target`` with relative ``tolerance`` in ``mode`` (band | under)."""

    target: float
    tolerance: float = 0.05
    mode: str = "band"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target) and self.target > 0):
            raise ProxylessError(f"target latency must be positive, got {self.target}",
                                 "target latency", "give a target > 0 in the cost model's unit")
        if self.mode not in MODES:
            raise ProxylessError(f"unknown target mode '{self.mode}'", "target mode",
                                 f"use one of {', '.join(MODES)}")
        if not 0 < self.tolerance < 1:
            raise ProxylessError(f"tolerance must be in (0, 1), got {self.tolerance}", "target tolerance",
                                 "give a fraction such as 0.05")

    @property
    def low(self) -> float:
        """Lowest accepted cost."""
        return self.target * (1 - self.tolerance) if self.mode == "band" else 0.0

    @property
    def high(self) -> float:
        """Highest accepted cost."""
        return self.target * (1 + self.tolerance) if self.mode == "band" else self.target

    @property
    def goal(self) -> float:
        """Where the argmax cost is steered: T (band) or T (1 - t / 2) (under)."""
        return self.target if self.mode == "band" else self.target * (1 - self.tolerance / 2)

    @property
    def inner_low(self) -> float:
        return self.goal * (1 - self.tolerance / 2)

    @property
    def inner_high(self) -> float:
        return self.goal * (1 + self.tolerance / 2)

    @property
    def aim_low(self) -> float:
        """Lowest aim of the controller's per-epoch correction: goal (1 - 3 t)."""
        return self.goal * (1 - 3 * self.tolerance)

    @property
    def aim_high(self) -> float:
        """Highest aim of the controller's per-epoch correction: goal (1 + 3 t)."""
        return self.goal * (1 + 3 * self.tolerance)

    @property
    def proposal_low(self) -> float:
        """Low edge of the window the final selection proposes from: T (1 - 1.5 t) | T (1 - 3 t)."""
        return self.target * (1 - 1.5 * self.tolerance if self.mode == "band" else 1 - 3 * self.tolerance)

    @property
    def proposal_high(self) -> float:
        """High edge of that window: T (1 + 1.5 t) (band) or T (under)."""
        return self.target * (1 + 1.5 * self.tolerance if self.mode == "band" else 1.0)

    def accepts(self, cost: float) -> bool:
        """``low <= cost <= high``."""
        return self.low <= cost <= self.high

    def in_inner(self, cost: float) -> bool:
        """``inner_low <= cost <= inner_high``."""
        return self.inner_low <= cost <= self.inner_high

    def meets(self, measured: float, share: float = 1.0) -> bool:
        """A measurement against T with a share of the tolerance: band ``|m / T - 1| <= share t``;
        under ``m / T - 1 <= -(1 - share) t`` (share 1: ``m <= T``)."""
        ratio = measured / self.target - 1.0
        if self.mode == "under":
            return ratio <= -(1.0 - share) * self.tolerance
        return abs(ratio) <= share * self.tolerance

    def check_reachable(self, cheapest: float, most_expensive: float, unit: str = "") -> None:
        """Refuse, before any training, a target that no architecture costing between ``cheapest``
        and ``most_expensive`` can meet (the lowest band target that does: cheapest / (1 + t))."""
        suffix = f" {unit}" if unit else ""
        span = f"the space spans {cheapest:.4g}-{most_expensive:.4g}{suffix}"
        lowest = cheapest / (1 + self.tolerance) if self.mode == "band" else cheapest
        if cheapest > self.high:
            raise ProxylessError(
                f"target {self.target:.4g}{suffix} is below the cheapest architecture "
                f"({cheapest:.4g}{suffix})", "target latency",
                f"{span}; choose a target of at least {lowest:.4g}{suffix}")
        if self.mode == "band" and most_expensive < self.low:
            raise ProxylessError(
                f"target {self.target:.4g}{suffix} is above the most expensive architecture "
                f"({most_expensive:.4g}{suffix})", "target latency",
                f"{span}; choose a lower target or mode 'under'")
