"""The final pick of a search: which architecture to derive.

:func:`select_architecture` (every target): the argmax if its predicted cost lies in the inner
half of the band, else the most probable architecture inside the inner half, else inside the band
(:func:`~proxylessnas.search.controller.constrained_argmax`); penalty mode takes the argmax.

:func:`select_measured` (band / under on measured hardware): the controller steers the
*predicted* cost (a table sum, calibrated on a dozen whole nets) into the band, but a prediction
of a single network is only good to a few per cent (docs/latency.md), about the width of a
+-5 % band. So on measured hardware the end of a band / under search does not trust one
prediction: it lists a few architectures, most probable first, whose predicted costs tile the
band's proposal window (:func:`band_candidates`, :class:`~proxylessnas.search.band.LatencyBand`),
times them all in one interleaved session, and derives the most probable one whose *measured*
latency meets the target (:func:`pick_measured`). What is reported afterwards is a separate
measurement of the derived net, so the selection's own noise does not flatter the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from proxylessnas.hardware.validate import SpeedGauge
from proxylessnas.search.band import LatencyBand
from proxylessnas.search.calibration import time_architectures
from proxylessnas.search.config import SearchConfig
from proxylessnas.search.controller import argmax_indices, constrained_argmax
from proxylessnas.search.cost_profile import CostProfile
from proxylessnas.search.target import LatencyTarget
from proxylessnas.space import SearchSpace


@dataclass(frozen=True)
class Candidate:
    indices: tuple[int, ...]
    log_prob: float
    predicted: float
    measured: float | None = None


def band_candidates(alphas: Sequence[Tensor], candidate_costs: Sequence[Tensor], fixed: float,
                    low: float, high: float, windows: int = 6) -> list[Candidate]:
    """The argmax and, for each of ``windows`` equal slices of ``[low, high]`` (predicted units),
    the most probable architecture inside it; duplicates removed, most probable first."""
    log_probs = [torch.log_softmax(a.detach().double().cpu(), dim=0) for a in alphas]
    found = [argmax_indices(alphas)]
    edges = np.linspace(low, high, windows + 1)
    for a, b in zip(edges[:-1], edges[1:]):
        inside = constrained_argmax(log_probs, candidate_costs, fixed, float(a), float(b))
        if inside is not None:
            found.append(inside)
    out, seen = [], set()
    for indices in found:
        key = tuple(int(i) for i in indices)
        if key in seen:
            continue
        seen.add(key)
        log_prob = float(sum(lp[i] for lp, i in zip(log_probs, key)))
        predicted = fixed + float(sum(float(c[i]) for c, i in zip(candidate_costs, key)))
        out.append(Candidate(key, log_prob, predicted))
    return sorted(out, key=lambda c: -c.log_prob)


def pick_measured(candidates: Sequence[Candidate], band: LatencyBand,
                  margin: float = 0.6) -> tuple[Candidate, str, bool]:
    """The most probable candidate whose measurement meets the target with room to spare
    (``band.meets(m, margin)``), else the most probable one that meets it at all
    (``band.meets(m)``), else the one measured closest to T. Returns (candidate, how it was
    chosen, target met)."""

    for share, how in ((margin, "inside the band with margin"), (1.0, "inside the band")):
        ok = [c for c in candidates if band.meets(c.measured, share)]
        if ok:
            return ok[0], f"most probable of {len(candidates)} measured, {how}", True
    closest = min(candidates, key=lambda c: abs(c.measured / band.target - 1.0))
    return closest, f"closest of {len(candidates)} measured (none met the target)", False


def select_by_measurement(propose: Callable[[float], list[Candidate]],
                          measure: Callable[[list[tuple[int, ...]]], list[float]],
                          to_measured: Callable[[float], float], band: LatencyBand,
                          rounds: int = 2) -> tuple[Candidate, str, list[Candidate]]:
    """Measure the candidates of ``propose(drift)`` and pick with :func:`pick_measured`.

    ``to_measured`` maps a prediction to the measured unit (the calibration). When no candidate
    meets the target, the machine has drifted from the calibration (other load, clocks): the next
    round proposes around the target divided by the observed drift,
    ``drift = median(measured / to_measured(predicted))``, and picks among all measured so far.
    """
    measured: list[Candidate] = []
    drift = 1.0
    for _ in range(rounds):
        seen = {c.indices for c in measured}
        fresh = [c for c in propose(drift) if c.indices not in seen]
        if fresh:
            times = measure([c.indices for c in fresh])
            measured += [replace(c, measured=float(t)) for c, t in zip(fresh, times)]
        ranked = sorted(measured, key=lambda c: -c.log_prob)
        chosen, how, met = pick_measured(ranked, band)
        if met:
            break
        drift = float(np.median([c.measured / to_measured(c.predicted) for c in measured]))
    return chosen, how, ranked


def select_architecture(alphas: Sequence[Tensor], profile: CostProfile,
                        target: LatencyTarget) -> tuple[list[int], str]:
    """The architecture to derive: the argmax if it lies in the inner half of the band (room
    for prediction error), else the most probable architecture inside the inner half, else
    inside the band (reported as such). Penalty mode: the argmax."""
    indices = argmax_indices(alphas)
    band = target.band
    if target.mode == "penalty" or band.in_inner(profile.cost_of(indices)):
        return indices, "argmax"
    log_probs = [torch.log_softmax(a.detach().double().cpu(), dim=0) for a in alphas]
    for low, high, where in ((band.inner_low, band.inner_high, "the inner half of the band"),
                             (band.low, band.high, "the band")):
        inside = constrained_argmax(log_probs, profile.candidate_costs, profile.fixed, low, high)
        if inside is not None:
            return inside, f"most probable inside {where} (argmax at {profile.cost_of(indices):.4g})"
    return indices, "argmax (no architecture inside the band)"


def select_measured(alphas: Sequence[Tensor], space: SearchSpace, target: LatencyTarget, config: SearchConfig,
                    gauge: SpeedGauge | None = None) -> tuple[list[int], str, list[dict[str, Any]]]:
    """Band / under modes on measured hardware: time a few probable architectures that tile the
    proposal window of the measured band (table units through the calibration, moved by the
    observed drift) and take the most probable one that meets the target when measured."""
    profile, band = target.profile, target.measured_band

    def propose(drift: float) -> list[Candidate]:
        return band_candidates(alphas, profile.candidate_costs, profile.fixed,
                               target.to_table(band.proposal_low / drift),
                               target.to_table(band.proposal_high / drift))

    chosen, how, measured = select_by_measurement(
        propose, lambda archs: time_architectures(space, [list(a) for a in archs], config, gauge),
        target.to_measured, band)
    table = [{"indices": list(c.indices), "log_prob": c.log_prob, "predicted": c.predicted,
              "measured": c.measured} for c in measured]
    return list(chosen.indices), how, table
