"""The final pick of a latency-targeted search, checked by measuring whole networks.

The controller steers the *predicted* cost (a table sum, calibrated on a dozen whole nets) into
the band, but a prediction of a single network is only good to a few per cent (docs/latency.md),
about the width of a +-5 % band. So on measured hardware the end of a band / under search does
not trust one prediction: it lists a few architectures, most probable first, whose predicted
costs tile the band (:func:`band_candidates`), times them all in one interleaved session, and
derives the most probable one whose *measured* latency meets the target
(:func:`pick_measured`). What is reported afterwards is a separate measurement of the derived
net, so the selection's own noise does not flatter the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from proxylessnas.search.controller import argmax_indices, constrained_argmax


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


def meets_target(measured: float, target: float, tolerance: float, mode: str, share: float = 1.0) -> bool:
    """band: ``|m / T - 1| <= share * tolerance``; under: ``m <= T (1 - (1 - share) tolerance)``."""
    ratio = measured / target - 1.0
    if mode == "under":
        return ratio <= -(1.0 - share) * tolerance
    return abs(ratio) <= share * tolerance


def pick_measured(candidates: Sequence[Candidate], target: float, tolerance: float, mode: str,
                  margin: float = 0.6) -> tuple[Candidate, str, bool]:
    """The most probable candidate whose measurement meets the target with room to spare
    (band: ``|m / T - 1| <= margin * tolerance``; under: ``m <= T (1 - (1 - margin) tolerance)``),
    else the most probable one that meets it at all (``|m / T - 1| <= tolerance``; ``m <= T``),
    else the one measured closest to T. Returns (candidate, how it was chosen, target met)."""

    for share, how in ((margin, "inside the band with margin"), (1.0, "inside the band")):
        ok = [c for c in candidates if meets_target(c.measured, target, tolerance, mode, share)]
        if ok:
            return ok[0], f"most probable of {len(candidates)} measured, {how}", True
    closest = min(candidates, key=lambda c: abs(c.measured / target - 1.0))
    return closest, f"closest of {len(candidates)} measured (none met the target)", False


def select_by_measurement(propose: Callable[[float], list[Candidate]],
                          measure: Callable[[list[tuple[int, ...]]], list[float]],
                          to_measured: Callable[[float], float], target: float, tolerance: float,
                          mode: str, rounds: int = 2) -> tuple[Candidate, str, list[Candidate]]:
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
        chosen, how, met = pick_measured(ranked, target, tolerance, mode)
        if met:
            break
        drift = float(np.median([c.measured / to_measured(c.predicted) for c in measured]))
    return chosen, how, ranked
