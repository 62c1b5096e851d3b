"""Latency-aware architecture losses: CE combined with the expected latency E[LAT].

Every loss has the signature ``(ce, expected_latency, target, **params) -> (loss, details)``:
``ce`` and ``expected_latency`` are scalar tensors (E[LAT] = fixed + sum_l <p_l, c_l>, differentiable
in the alphas), ``target`` is the latency target T in the cost model's unit, and ``details`` holds
plain floats for logging (``ce``, ``expected_latency``, ``target``, ``latency_term``, ``loss``).

=============  ===========================================  ==========================
name           loss                                         defaults
=============  ===========================================  ==========================
mul_log        a * CE * (ln E / ln T)^b                     a = 0.2, b = 0.3 (reference)
add_linear     CE + lambda * (E - T) / T                    lambda = 0.1 (reference)
paper          CE + lambda2 * E                             lambda2 = 0.1 / T
absolute       CE + lambda * |E / T - 1|                    lambda = 0.1
hinge          CE + lambda * max(0, E / T - 1)              lambda = 0.1
=============  ===========================================  ==========================

``paper`` is the paper's ``CE + lambda2 E[LAT]`` (weight decay lives in the optimiser). Its
weight has the unit 1/latency; the default 0.1 / T gives it the same slope as ``add_linear``
so that the default does not depend on whether latency is counted in ms or MMACs.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
from torch import Tensor

from proxylessnas.errors import ProxylessError

LossDetails = dict[str, float]
LatencyLoss = Callable[..., tuple[Tensor, LossDetails]]


def _check_target(target: float, name: str) -> float:
    target = float(target)
    if not math.isfinite(target) or target <= 0:
        raise ProxylessError(f"latency target must be a positive number, got {target}",
                             f"latency loss '{name}'", "give a target latency > 0")
    return target


def _details(ce: Tensor, expected_latency: Tensor, target: float, latency_term: Tensor,
             loss: Tensor) -> LossDetails:
    return {"ce": float(ce.detach()), "expected_latency": float(expected_latency.detach()),
            "target": target, "latency_term": float(latency_term.detach()), "loss": float(loss.detach())}


def mul_log(ce: Tensor, expected_latency: Tensor, target: float, *, scale: float = 0.2,
            exponent: float = 0.3) -> tuple[Tensor, LossDetails]:
    """The reference release's default: ``loss = a * CE * (ln E / ln T)^b`` (a = scale, b = exponent).

    Needs T > 1 in the cost unit (ln T > 0). Where E <= 1 the ratio ln E / ln T is clamped to a
    tiny positive value: the network is then far below the target and the factor is ~0 anyway.
    """
    target = _check_target(target, "mul_log")
    if target <= 1.0:
        raise ProxylessError(f"mul_log needs a target above 1 in the cost unit, got {target}",
                             "latency loss 'mul_log'",
                             "express latency in a smaller unit, or use add_linear, absolute or hinge")
    ratio = torch.log(expected_latency) / math.log(target)
    factor = ratio.clamp_min(1e-6) ** exponent
    loss = scale * ce * factor
    return loss, _details(ce, expected_latency, target, factor, loss)


def add_linear(ce: Tensor, expected_latency: Tensor, target: float, *,
               weight: float = 0.1) -> tuple[Tensor, LossDetails]:
    """The reference release's alternative: ``loss = CE + lambda * (E - T) / T``.

    With ``weight`` set by :class:`~proxylessnas.search.controller.LatencyController` this is the
    Lagrangian of the constraint E / T - 1 = 0.
    """
    target = _check_target(target, "add_linear")
    term = (expected_latency - target) / target
    loss = ce + weight * term
    return loss, _details(ce, expected_latency, target, term, loss)


def paper(ce: Tensor, expected_latency: Tensor, target: float, *,
          weight: float | None = None) -> tuple[Tensor, LossDetails]:
    """The paper's loss ``CE + lambda2 * E[LAT]``; ``weight`` (lambda2) defaults to 0.1 / T."""
    target = _check_target(target, "paper")
    lambda2 = 0.1 / target if weight is None else weight
    term = expected_latency
    loss = ce + lambda2 * term
    return loss, _details(ce, expected_latency, target, term, loss)


def absolute(ce: Tensor, expected_latency: Tensor, target: float, *,
             weight: float = 0.1) -> tuple[Tensor, LossDetails]:
    """Two-sided penalty: ``loss = CE + lambda * |E / T - 1|`` (pulls E to T from both sides)."""
    target = _check_target(target, "absolute")
    term = (expected_latency / target - 1.0).abs()
    loss = ce + weight * term
    return loss, _details(ce, expected_latency, target, term, loss)


def hinge(ce: Tensor, expected_latency: Tensor, target: float, *,
          weight: float = 0.1) -> tuple[Tensor, LossDetails]:
    """One-sided penalty: ``loss = CE + lambda * max(0, E / T - 1)`` (free below the target)."""
    target = _check_target(target, "hinge")
    term = torch.relu(expected_latency / target - 1.0)
    loss = ce + weight * term
    return loss, _details(ce, expected_latency, target, term, loss)


LATENCY_LOSSES: dict[str, LatencyLoss] = {
    "mul_log": mul_log,
    "add_linear": add_linear,
    "paper": paper,
    "absolute": absolute,
    "hinge": hinge,
}


def latency_loss_names() -> list[str]:
    return list(LATENCY_LOSSES)


def get_latency_loss(name: str) -> LatencyLoss:
    """The latency loss registered under ``name``; an unknown name lists the known ones."""
    if name not in LATENCY_LOSSES:
        raise ProxylessError(f"unknown latency loss '{name}'", "latency loss",
                             f"use one of {', '.join(LATENCY_LOSSES)}")
    return LATENCY_LOSSES[name]


def latency_loss(name: str, ce: Tensor, expected_latency: Tensor, target: float,
                 **params: float) -> tuple[Tensor, LossDetails]:
    """Look up ``name`` and apply it; unknown parameters are errors, not ignored."""
    function = get_latency_loss(name)
    allowed = [p for p, spec in inspect.signature(function).parameters.items()
               if spec.kind is spec.KEYWORD_ONLY]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ProxylessError(f"unknown parameter(s) {', '.join(unknown)} for latency loss '{name}'",
                             "latency loss", f"use any of {', '.join(allowed) or 'none'}")
    return function(ce, expected_latency, target, **params)
