"""How far an architecture distribution has converged, measured per epoch.

For decisions d (searched layers / edges) with probabilities p_d over K_d candidates:

    normalised entropy   H_n = sum_d H(p_d) / sum_d ln K_d,   H(p) = -sum_j p_j ln p_j
                         (the sum of the entropies over the sum of the uniform entropies; only
                         decisions with K_d >= 2: 1 = every decision uniform, 0 = every one one-hot)
    mean max probability m = mean_d max_j p_dj                (1/K for uniform, 1 for one-hot)
    argmax changes       c = #{d : argmax_t(d) != argmax_{t-1}(d)}   between consecutive epochs

Pure Python on sequences of numbers (lists, tuples, 1-D tensors), so the search loop, its
summary and warnings (:mod:`proxylessnas.search.convergence`) and the plots
(:mod:`proxylessnas.viz`) share one definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from proxylessnas.errors import ProxylessError

ENTROPY_WARNING_THRESHOLD = 0.8  # final H_n above this: the search barely decided anything

Probs = Sequence[Sequence[float]] | Mapping[str, Sequence[float]]
Choices = Sequence[str] | Mapping[str, str]


def _decisions(probs: Probs) -> list[list[float]]:
    """The probability vectors with K >= 2 candidates, as lists of floats."""
    layers = probs.values() if isinstance(probs, Mapping) else probs
    return [values for values in ([float(v) for v in p] for p in layers) if len(values) >= 2]


def _entropy(p: Iterable[float]) -> float:
    """H(p) = -sum_j p_j ln p_j (nats; 0 ln 0 = 0)."""
    return -sum(v * math.log(v) for v in p if v > 0)


def normalised_entropy(probs: Probs) -> float:
    """H_n = sum_d H(p_d) / sum_d ln K_d over decisions with K_d >= 2 (1 uniform, 0 one-hot);
    0.0 when no decision has two candidates (nothing left to decide)."""
    decisions = _decisions(probs)
    uniform = sum(math.log(len(p)) for p in decisions)
    return sum(_entropy(p) for p in decisions) / uniform if uniform > 0 else 0.0


def mean_max_probability(probs: Probs) -> float:
    """m = mean_d max_j p_dj over decisions with K_d >= 2; 1.0 when there is none."""
    decisions = _decisions(probs)
    return sum(max(p) for p in decisions) / len(decisions) if decisions else 1.0


def _as_list(choices: Choices | Sequence[int], keys: Sequence[str] | None = None) -> list[Any]:
    if isinstance(choices, Mapping):
        return [choices[key] for key in (keys if keys is not None else list(choices))]
    return list(choices)


def argmax_changes(previous_argmax: Choices | Sequence[int] | None, argmax: Choices | Sequence[int]) -> int:
    """c = #{d : previous(d) != now(d)}; 0 without a previous epoch. Both as {label: op} (the
    metrics rows' "arch") or as sequences (indices or tokens) in the same decision order."""
    if previous_argmax is None:
        return 0
    if isinstance(previous_argmax, Mapping) != isinstance(argmax, Mapping):
        raise ProxylessError("argmax given once as {label: op} and once as a sequence", "argmax_changes",
                             "pass both in the same form")
    if isinstance(argmax, Mapping) and set(argmax) != set(previous_argmax):  # type: ignore[arg-type]
        raise ProxylessError("the two epochs have different decisions", "argmax_changes",
                             "compare epochs of one search space")
    keys = list(argmax) if isinstance(argmax, Mapping) else None
    before, now = _as_list(previous_argmax, keys), _as_list(argmax, keys)
    if len(before) != len(now):
        raise ProxylessError(f"{len(before)} decisions before, {len(now)} now", "argmax_changes",
                             "compare epochs of one search space")
    return sum(a != b for a, b in zip(before, now))


def row_changes(metrics_rows: Sequence[Mapping[str, Any]], index: int) -> int:
    """Argmax changes of row ``index``: its "argmax_changes", else counted from the "arch" of the
    row before it (0 for the first row or when a row lacks "arch")."""
    row = metrics_rows[index]
    if row.get("argmax_changes") is not None:
        return int(row["argmax_changes"])
    if index == 0 or not metrics_rows[index - 1].get("arch") or not row.get("arch"):
        return 0
    return argmax_changes(metrics_rows[index - 1]["arch"], row["arch"])
