"""Search strategies: how one architecture step updates the logits alpha of a :class:`SuperNet`.

Both strategies share the weight step (run by :func:`~proxylessnas.search.run.run_search`) and
differ in the architecture step, taken on a batch of the architecture-validation split:

- :class:`GradientStrategy` (binary gates, PAPER.md 3): sample gates in mode ``full``,
  ``full_v2`` or ``two``, loss = latency objective(CE, E[LAT]) with E[LAT] = fixed + sum_l <p_l, c_l>,
  backward into the alphas only, Adam step, then ``finish_arch_step`` (two-path rescale).
- :class:`ReinforceStrategy`: sample B architectures from p, reward R = ACC * (T / LAT)^w
  (MnasNet's reward), loss = -(1/B) sum_b (R_b - baseline) log p(arch_b), Adam step.

:class:`LatencyObjective` owns the cost model's candidate costs, the target T and, in the target
modes ``band`` / ``under``, the dual-ascent :class:`~proxylessnas.search.controller.LatencyController`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.finite import check_finite
from proxylessnas.search.controller import (
    LatencyController,
    TargetConfig,
    arch_cost,
    argmax_indices,
    cheapest_cost,
    check_target,
    constrained_argmax,
    most_expensive_cost,
)
from proxylessnas.search.losses import latency_loss
from proxylessnas.search.reinforce import MovingAverageBaseline, reinforce_loss, reward
from proxylessnas.space.spec import SearchSpace
from proxylessnas.supernet import SuperNet, batch_statistics_only

CONTROLLER_COSTS = ("argmax", "expected")


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class LatencyObjective:
    """The latency side of the architecture loss, for one space and cost model.

    ``mode``: ``penalty`` (the soft loss ``loss_name`` with reference T), ``band`` or ``under``
    (``CE + lambda (E[LAT] - T) / T`` with lambda moved by dual ascent on the argmax
    architecture's cost, see :mod:`proxylessnas.search.controller`).
    """

    def __init__(self, space: SearchSpace, cost_model: Any, *, mode: str, target: float | None,
                 target_position: float = 0.5, loss_name: str = "mul_log",
                 loss_params: dict[str, float] | None = None, tolerance: float = 0.05,
                 step_size: float = 0.1, initial_weight: float = 0.1, max_weight: float = 100.0,
                 check_now: bool = True, controller_cost: str = "argmax") -> None:
        """``check_now=False`` defers the feasibility check of an explicit target to
        :meth:`calibrate` (a target in measured ms is only comparable with the space's range
        after calibration)."""
        if controller_cost not in CONTROLLER_COSTS:
            raise ProxylessError(f"unknown controller cost '{controller_cost}'", "latency.controller_cost",
                                 f"use one of {', '.join(CONTROLLER_COSTS)}")
        self.controller_cost = controller_cost
        self.space = space
        self.cost_model = cost_model
        self.unit = getattr(cost_model, "unit", "")
        self.mode = mode
        self.fixed, self.candidate_costs = cost_model.candidate_costs(space)
        self.cheapest = cheapest_cost(self.fixed, self.candidate_costs)
        self.most_expensive = most_expensive_cost(self.fixed, self.candidate_costs)
        self.target_from_position = target is None
        if target is None:
            # T = cheapest + position * (most expensive - cheapest)
            target = self.cheapest + target_position * (self.most_expensive - self.cheapest)
        self.target = float(target)
        self.requested_target = self.target  # in measured units; ``target`` is in the model's
        self.calibration: tuple[float, float] | None = None
        self.speed_reference: list[float] | None = None  # gauge nets' medians in the calibration session
        self.loss_name = loss_name
        self.loss_params = dict(loss_params or {})
        self.controller: LatencyController | None = None
        target_config = TargetConfig(self.target, mode if mode != "penalty" else "band", tolerance,
                                     step_size, initial_weight=initial_weight, max_weight=max_weight)
        self.target_config = target_config
        if mode == "penalty":
            # a soft loss needs no band, but a target below every architecture is still an error
            check_target(TargetConfig(self.target, "under", tolerance), self.fixed, self.candidate_costs,
                         self.unit)
            # check the soft loss's parameters now, not at the first architecture step
            probe = torch.tensor(max(self.target, 1.0) * 1.01, dtype=torch.float64)
            latency_loss(loss_name, torch.tensor(1.0, dtype=torch.float64), probe, self.target,
                         **self.loss_params)
        else:
            if check_now or self.target_from_position:
                check_target(target_config, self.fixed, self.candidate_costs, self.unit)
            self.controller = LatencyController(target_config)

    def calibrate(self, slope: float, intercept: float) -> None:
        """Move T into the cost model's units from a fit ``measured = slope * predicted + intercept``
        over whole measured networks: ``T_model = (T - intercept) / slope``.

        A per-layer table misses what only a whole network shows (framework overhead per
        module, cache effects); the band is about the measured latency, so the controller
        aims at the model-unit value that corresponds to it. The requested T is kept for the
        report; a T given as a position in the space's range keeps its position.
        """
        if not (math.isfinite(slope) and slope > 0 and math.isfinite(intercept)):
            raise ProxylessError(f"latency calibration failed (slope {slope:.3g}, intercept {intercept:.3g})",
                                 "latency.calibrate",
                                 "set latency.calibrate=0 or measure on a quieter machine")
        self.calibration = (float(slope), float(intercept))
        if self.target_from_position:
            # the position is kept: the map is linear, so T in table units is unchanged and the
            # requested T becomes the measured latency at that position
            self.requested_target = slope * self.target + intercept
        self.target = (self.requested_target - intercept) / slope
        # the band is +-tolerance of the measured T: half-width tolerance * T / slope in table units
        tolerance = self.target_config.tolerance * self.requested_target / (slope * self.target)
        self.target_config = dataclasses.replace(self.target_config, target=self.target,
                                                 tolerance=min(tolerance, 0.99))
        check_target(self.target_config, self.fixed, self.candidate_costs, self.unit)
        if self.controller is not None:
            self.controller.config = self.target_config

    @property
    def weight(self) -> float | None:
        """The current lambda of the target modes (None in penalty mode)."""
        return None if self.controller is None else self.controller.weight

    def expected(self, probs: Sequence[Tensor]) -> Tensor:
        """E[LAT] = fixed + sum_l <p_l, c_l>, differentiable in ``probs``."""
        return self.cost_model.expected_cost(self.space, probs)

    def cost_of(self, indices: Sequence[int]) -> float:
        """Predicted cost of one architecture (candidate index per searched layer)."""
        return arch_cost(self.fixed, self.candidate_costs, indices)

    def loss(self, ce: Tensor, probs: Sequence[Tensor]) -> tuple[Tensor, dict[str, float]]:
        expected = self.expected(probs)
        if self.controller is not None:
            return self.controller.loss(ce, expected)
        return latency_loss(self.loss_name, ce, expected, self.target, **self.loss_params)

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
                cost = float(self.expected([torch.softmax(a.detach(), dim=0) for a in alphas]))
        else:
            cost = self.cost_of(argmax_indices(alphas))
        self.controller.update(cost)

    def accepts(self, cost: float) -> bool:
        """Whether ``cost`` meets the target (always True in penalty mode)."""
        return self.controller is None or self.target_config.accepts(cost)

    def select(self, alphas: Sequence[Tensor]) -> tuple[list[int], str]:
        """The architecture to derive: the argmax if it lies in the inner half of the band (room
        for prediction error), else the most probable architecture inside the inner half, else
        inside the band (reported as such). Penalty mode: the argmax."""
        indices = argmax_indices(alphas)
        config = self.target_config
        if self.controller is None or config.inner_low <= self.cost_of(indices) <= config.inner_high:
            return indices, "argmax"
        log_probs = [torch.log_softmax(a.detach().double().cpu(), dim=0) for a in alphas]
        for low, high, where in ((config.inner_low, config.inner_high, "the inner half of the band"),
                                 (config.low, config.high, "the band")):
            inside = constrained_argmax(log_probs, self.candidate_costs, self.fixed, low, high)
            if inside is not None:
                return inside, f"most probable inside {where} (argmax at {self.cost_of(indices):.4g})"
        return indices, "argmax (no architecture inside the band)"

    def state_dict(self) -> dict:
        return {"controller": None if self.controller is None else self.controller.state_dict(),
                "calibration": None if self.calibration is None else list(self.calibration),
                "speed_reference": self.speed_reference}

    def load_state_dict(self, state: dict) -> None:
        if state.get("calibration") is not None:
            self.calibrate(*state["calibration"])
        self.speed_reference = state.get("speed_reference")
        if self.controller is not None and state.get("controller") is not None:
            self.controller.load_state_dict(state["controller"])


def entropy_penalty(probs: Sequence[Tensor]) -> Tensor:
    """``sum_d H(p_d) / ln K_d`` over decisions with K_d >= 2 candidates, differentiable: each
    decision counts between 0 (one-hot) and 1 (uniform), so the weight is per decision and its
    pull on one logit does not shrink as the space gains decisions (a sum over all entropies
    divided by their uniform total would)."""
    terms = [-(p * torch.log(p.clamp_min(1e-30))).sum() / math.log(p.shape[-1])
             for p in probs if p.shape[-1] > 1]
    return torch.stack(terms).sum()


def entropy_weight(final_weight: float, progress: float) -> float:
    """The entropy term's weight at ``progress`` (0 to 1) through the search phase: it ramps
    linearly, ``beta_t = final_weight * progress``, so early steps follow the accuracy and latency
    signal alone and the last ones settle the decisions that signal left open."""
    return final_weight * min(1.0, max(0.0, progress))


def add_entropy_term(loss: Tensor, details: dict[str, float], probs: Sequence[Tensor],
                     weight: float) -> Tensor:
    """``loss + weight * entropy_penalty(probs)`` (``details["entropy_term"]`` records the term)."""
    if weight <= 0:
        return loss
    term = weight * entropy_penalty(probs)
    details["entropy_term"] = float(term.detach())
    return loss + term.to(loss.dtype)


def make_arch_optimizer(supernet: SuperNet, lr: float, betas: tuple[float, float], eps: float,
                        weight_decay: float) -> torch.optim.Adam:
    """Adam on the alphas only (paper: lr 1e-3, betas (0, 0.999), eps 1e-8, no weight decay)."""
    return torch.optim.Adam(supernet.arch_parameters(), lr=lr, betas=betas, eps=eps,
                            weight_decay=weight_decay)


class GradientStrategy:
    """Binary-gate architecture gradients (modes full, full_v2, two) plus the latency objective."""

    name = "gradient"

    def __init__(self, supernet: SuperNet, objective: LatencyObjective, optimizer: torch.optim.Optimizer,
                 binary_mode: str = "full_v2") -> None:
        self.supernet = supernet
        self.objective = objective
        self.optimizer = optimizer
        self.binary_mode = binary_mode
        self.entropy_weight = 0.0  # set before each step by the run (see :func:`entropy_weight`)

    def arch_step(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> dict[str, float]:
        supernet = self.supernet
        # the DARTS / Gumbel baselines have one architecture mode, full (every candidate runs)
        supernet.sample_arch_step(self.binary_mode if supernet.mixed_op == "binary" else "full", generator)
        logits = supernet(images)
        ce = F.cross_entropy(logits, labels)  # no label smoothing in the architecture loss
        probs = supernet.probs()
        loss, details = self.objective.loss(ce, probs)
        loss = add_entropy_term(loss, details, probs, self.entropy_weight)
        check_finite("architecture loss", loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=supernet.arch_parameters())  # weights get no gradient here
        self.optimizer.step()
        supernet.finish_arch_step()
        self.objective.after_arch_step(supernet.arch_parameters())
        details["arch_accuracy"] = float((logits.argmax(1) == labels).float().mean())
        return details

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class ReinforceStrategy:
    """REINFORCE on the alphas: grad = -(1/B) sum_b (R_b - baseline) grad log p(arch_b)."""

    name = "reinforce"

    def __init__(self, supernet: SuperNet, objective: LatencyObjective, optimizer: torch.optim.Optimizer,
                 samples: int = 10, reward_exponent: float = 0.1, baseline_decay: float = 0.9) -> None:
        self.supernet = supernet
        self.objective = objective
        self.optimizer = optimizer
        self.samples = samples
        self.reward_exponent = reward_exponent
        self.baseline = MovingAverageBaseline(baseline_decay)
        self._norms = batch_norms(supernet)
        self.entropy_weight = 0.0  # set before each step by the run (see :func:`entropy_weight`)

    @torch.no_grad()
    def _accuracy(self, indices: list[int], images: Tensor, labels: Tensor) -> float:
        self.supernet.set_path(indices)
        with batch_statistics_only(self._norms):  # batch statistics, running ones untouched
            logits = self.supernet(images)
        return float((logits.argmax(1) == labels).float().mean())

    def arch_step(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> dict[str, float]:
        supernet, objective = self.supernet, self.objective
        archs = [supernet.sample_arch(generator) for _ in range(self.samples)]
        accuracies = [self._accuracy(a, images, labels) for a in archs]
        latencies = [objective.cost_of(a) for a in archs]
        rewards = reward(torch.tensor(accuracies), torch.tensor(latencies), objective.target,
                         self.reward_exponent)
        log_probs = torch.stack([supernet.log_prob(a) for a in archs])
        loss, details = reinforce_loss(rewards.to(log_probs.device), log_probs, self.baseline)
        loss = add_entropy_term(loss, details, supernet.probs(), self.entropy_weight)
        check_finite("REINFORCE loss", loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            expected = float(objective.expected([p.detach() for p in supernet.probs()]))
        return {"loss": details["loss"], "reward": details["reward"], "baseline": details["baseline"],
                "entropy_term": details.get("entropy_term", 0.0),
                "arch_accuracy": sum(accuracies) / len(accuracies), "expected_latency": expected,
                "sampled_latency": sum(latencies) / len(latencies), "target": objective.target}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "baseline": self.baseline.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])


def make_strategy(name: str, supernet: SuperNet, objective: LatencyObjective,
                  optimizer: torch.optim.Optimizer, *, binary_mode: str = "full_v2", samples: int = 10,
                  reward_exponent: float = 0.1, baseline_decay: float = 0.9):
    """The strategy registered under ``name`` (gradient | reinforce)."""
    if name == "gradient":
        return GradientStrategy(supernet, objective, optimizer, binary_mode)
    if name == "reinforce":
        return ReinforceStrategy(supernet, objective, optimizer, samples, reward_exponent, baseline_decay)
    raise ProxylessError(f"unknown strategy '{name}'", "--strategy", "use gradient or reinforce")
