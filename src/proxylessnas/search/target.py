"""The latency target of a search: T as requested, T in the cost model's units, their bands, and
the calibration that maps one onto the other.

Without calibration both are the same number. With a fit over whole measured networks,
``measured = slope * predicted + intercept`` (:mod:`proxylessnas.search.calibration`), T moves
into table units and its band keeps the measured half-width::

    T_table = (T_requested - intercept) / slope,    t_table = t * T_requested / (slope * T_table)

A T given as a position in the space's range keeps its position: T_table stays, and
T_requested becomes the measured latency there, ``slope * T_table + intercept``.
"""

from __future__ import annotations

import math

from proxylessnas.errors import ProxylessError
from proxylessnas.search.band import LatencyBand
from proxylessnas.search.cost_profile import CostProfile


class LatencyTarget:
    """T for ``mode`` (penalty | band | under): ``table`` (the cost model's unit, what the
    controller steers the predicted cost to) and ``requested`` (as asked: measured ms on measured
    hardware once calibrated), ``band`` (table units) and ``measured_band`` (requested units).

    ``target=None`` puts T at ``target_position`` of the space's range. An impossible target is
    refused here, before any training; ``check_now=False`` defers the check of an explicit
    target to :meth:`calibrate` (a target in measured ms is only comparable with the space's range
    after calibration). Penalty mode has no band, but a T below every architecture is refused.
    """

    def __init__(self, profile: CostProfile, *, mode: str, target: float | None, target_position: float = 0.5,
                 tolerance: float = 0.05, check_now: bool = True) -> None:
        self.profile = profile
        self.mode = mode
        self.tolerance = tolerance
        self.from_position = target is None
        self.table = float(profile.at_position(target_position) if target is None else target)
        self.requested = self.table
        self.calibration: tuple[float, float] | None = None
        self.speed_reference: list[float] | None = None  # gauge nets' medians in the calibration session
        self.band = LatencyBand(self.table, tolerance, "band" if mode == "penalty" else mode)
        if mode == "penalty":
            self._check(LatencyBand(self.table, tolerance, "under"))
        elif check_now or self.from_position:
            self._check(self.band)

    @property
    def measured_band(self) -> LatencyBand:
        """The band around the requested T with the requested tolerance (measured units)."""
        return LatencyBand(self.requested, self.tolerance, self.band.mode)

    def accepts(self, cost: float) -> bool:
        """Whether a predicted ``cost`` meets the target (always in penalty mode)."""
        return self.mode == "penalty" or self.band.accepts(cost)

    def to_measured(self, predicted: float) -> float:
        """``slope * predicted + intercept`` (the identity without calibration)."""
        slope, intercept = self.calibration or (1.0, 0.0)
        return slope * predicted + intercept

    def to_table(self, measured: float) -> float:
        """``(measured - intercept) / slope`` (the identity without calibration)."""
        slope, intercept = self.calibration or (1.0, 0.0)
        return (measured - intercept) / slope

    def calibrate(self, slope: float, intercept: float) -> None:
        """Move T into table units from ``measured = slope * predicted + intercept`` (module
        docstring) and check it against the space's range there.

        A per-layer table misses what only a whole network shows (framework overhead per
        module, cache effects); the band is about the measured latency, so the controller
        aims at the table value that corresponds to it."""
        if not (math.isfinite(slope) and slope > 0 and math.isfinite(intercept)):
            raise ProxylessError(f"latency calibration failed (slope {slope:.3g}, intercept {intercept:.3g})",
                                 "latency.calibrate",
                                 "set latency.calibrate=0 or measure on a quieter machine")
        self.calibration = (float(slope), float(intercept))
        if self.from_position:
            self.requested = slope * self.table + intercept
        self.table = (self.requested - intercept) / slope
        tolerance = self.band.tolerance * self.requested / (slope * self.table)
        self.band = LatencyBand(self.table, min(tolerance, 0.99), self.band.mode)
        self._check(self.band)

    def _check(self, band: LatencyBand) -> None:
        band.check_reachable(self.profile.cheapest, self.profile.most_expensive, self.profile.unit)

    def state_dict(self) -> dict:
        return {"calibration": None if self.calibration is None else list(self.calibration),
                "speed_reference": self.speed_reference}

    def load_state_dict(self, state: dict) -> None:
        if state.get("calibration") is not None:
            self.calibrate(*state["calibration"])
        self.speed_reference = state.get("speed_reference")
