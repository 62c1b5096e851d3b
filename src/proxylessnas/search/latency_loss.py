"""The latency side of the architecture loss, for one cost profile and target.

- ``penalty``: the soft loss ``loss_name`` of (CE, E[LAT]) with reference T
  (:func:`proxylessnas.search.losses.latency_loss`);
- ``band`` / ``under``: ``CE + lambda g + (rho / 2) g^2`` with ``g = E[LAT] / T_aim - 1`` and
  lambda moved by dual ascent after every architecture step, T_aim corrected once an epoch
  (:class:`~proxylessnas.search.controller.LatencyController`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from proxylessnas.errors import ProxylessError
from proxylessnas.search.controller import LatencyController, TargetConfig, argmax_indices
from proxylessnas.search.cost_profile import CostProfile
from proxylessnas.search.losses import latency_loss
from proxylessnas.search.target import LatencyTarget

CONTROLLER_COSTS = ("argmax", "expected")


class LatencyLoss:
    """``loss(ce, probs)`` of the architecture step, ``after_arch_step`` (the dual-ascent step),
    ``check_epoch`` (the controller's epoch check) and the controller's checkpoint state."""

    def __init__(self, profile: CostProfile, target: LatencyTarget, *, loss_name: str = "mul_log",
                 loss_params: dict[str, float] | None = None, step_size: float = 0.1,
                 initial_weight: float = 0.1, max_weight: float = 100.0,
                 controller_cost: str = "argmax") -> None:
        if controller_cost not in CONTROLLER_COSTS:
            raise ProxylessError(f"unknown controller cost '{controller_cost}'", "latency.controller_cost",
                                 f"use one of {', '.join(CONTROLLER_COSTS)}")
        self.profile = profile
        self.target = target
        self.controller_cost = controller_cost
        self.loss_name = loss_name
        self.loss_params = dict(loss_params or {})
        self.controller: LatencyController | None = None
        band = target.band
        config = TargetConfig(band.target, band.mode, band.tolerance, step_size,
                              initial_weight=initial_weight, max_weight=max_weight)
        if target.mode == "penalty":
            # check the soft loss's parameters now, not at the first architecture step
            probe = torch.tensor(max(target.table, 1.0) * 1.01, dtype=torch.float64)
            latency_loss(loss_name, torch.tensor(1.0, dtype=torch.float64), probe, target.table,
                         **self.loss_params)
        else:
            self.controller = LatencyController(config)

    @property
    def weight(self) -> float | None:
        """The current lambda of the target modes (None in penalty mode)."""
        return None if self.controller is None else self.controller.weight

    def retarget(self) -> None:
        """Give the controller the target's band again (after a calibration moved it)."""
        if self.controller is not None:
            band = self.target.band
            self.controller.config = dataclasses.replace(self.controller.config, target=band.target,
                                                         tolerance=band.tolerance)

    def loss(self, ce: Tensor, probs: Sequence[Tensor]) -> tuple[Tensor, dict[str, float]]:
        expected = self.profile.expected(probs)
        if self.controller is not None:
            return self.controller.loss(ce, expected)
        return latency_loss(self.loss_name, ce, expected, self.target.table, **self.loss_params)

    def after_arch_step(self, alphas: Sequence[Tensor]) -> None:
        """Target modes: one dual-ascent step on lambda, driven by the argmax architecture's cost
        (``controller_cost="argmax"``) or by E[LAT] (``"expected"``).

        Near a uniform distribution the argmax is a noisy draw: its cost jumps between cheap and
        expensive architectures with tiny changes of the logits, so lambda flips sign and drags
        every logit back and forth. E[LAT] moves smoothly and meets the argmax cost once the
        distribution has converged; the final selection still enforces the band."""
        if self.controller is None:
            return
        if self.controller_cost == "expected":
            with torch.no_grad():
                cost = float(self.profile.expected([torch.softmax(a.detach(), dim=0) for a in alphas]))
        else:
            cost = self.profile.cost_of(argmax_indices(alphas))
        self.controller.update(cost)

    def check_epoch(self, epoch: int, argmax_cost: float) -> bool | None:
        """The controller's end-of-epoch check of the argmax cost (it may correct the aim): whether
        the cost meets the target; None in penalty mode."""
        if self.controller is None:
            return None
        return self.controller.check_epoch(epoch, argmax_cost).accepted

    def state_dict(self) -> dict:
        return {"controller": None if self.controller is None else self.controller.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.retarget()
        if self.controller is not None and state.get("controller") is not None:
            self.controller.load_state_dict(state["controller"])
