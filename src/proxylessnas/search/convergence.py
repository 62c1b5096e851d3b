"""How far the architecture distribution has converged, and plain-words warnings when it has not.

For decisions d (searched layers / edges) with probabilities p_d over K_d candidates:

    normalised entropy   H_n = sum_d H(p_d) / sum_d ln K_d,   H(p) = -sum_j p_j ln p_j
                         (the sum of the entropies over the sum of the uniform entropies; only
                         decisions with K_d >= 2: 1 = every decision uniform, 0 = every one one-hot)
    mean max probability m = mean_d max_j p_dj                (1/K for uniform, 1 for one-hot)
    argmax changes       c = #{d : argmax_t(d) != argmax_{t-1}(d)}   between consecutive epochs

Pure Python on sequences of numbers (lists, tuples, 1-D tensors), so the search loop, the
summary and the plots share one definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from proxylessnas.errors import ProxylessError

ENTROPY_WARNING_THRESHOLD = 0.8  # final H_n above this: the search barely decided anything
LOGIT_GAP = 2.0  # logit gap (nats) of a clear choice: p = 0.88 against one rival
COLLAPSE_FRACTION = 0.5  # argmax on parameter-free ops for >= this fraction of decisions: collapse
CHAIN_PARAMETER_FREE_OPS = frozenset({"zero"})  # today's chain spaces (MBConv candidates + zero)

LATENCY_CONSTRAINT = {"band": " inside the latency band", "under": " under the latency target"}

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


def convergence_summary(metrics_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """From the metrics.jsonl rows of a run (rows may predate the convergence keys; then they are
    computed from "probs" and "arch"): the final normalised entropy and mean max probability,
    the argmax changes of the last epoch, the epoch (from 1) of the last change (None: never
    changed), and the number of architecture steps taken."""
    if not metrics_rows:
        raise ProxylessError("no metrics rows", "convergence summary", "finish at least one epoch")
    last = metrics_rows[-1]

    def final(key: str, compute) -> float | None:
        if last.get(key) is not None:
            return float(last[key])
        return compute(last["probs"]) if last.get("probs") else None

    changes = [row_changes(metrics_rows, i) for i in range(len(metrics_rows))]
    changed = [row.get("epoch", i + 1) for i, (row, n) in enumerate(zip(metrics_rows, changes)) if n]
    return {
        "normalised_entropy": final("normalised_entropy", normalised_entropy),
        "argmax_changes_last_epoch": changes[-1],
        "mean_max_probability": final("mean_max_prob", mean_max_probability),
        "last_argmax_change_epoch": changed[-1] if changed else None,
        "arch_steps": int(sum(row.get("arch_steps") or 0 for row in metrics_rows)),
        "threshold": ENTROPY_WARNING_THRESHOLD,
    }


def format_convergence(convergence: Mapping[str, Any]) -> str:
    """The summary's line: 'convergence: normalised entropy 0.93 (1 uniform, 0 one-hot), ...'."""
    parts = []
    if convergence.get("normalised_entropy") is not None:
        parts.append(f"normalised entropy {convergence['normalised_entropy']:.2f} (1 uniform, 0 one-hot)")
    if convergence.get("mean_max_probability") is not None:
        parts.append(f"mean max p {convergence['mean_max_probability']:.2f}")
    parts.append(f"argmax changes in the last epoch {convergence.get('argmax_changes_last_epoch', 0)}")
    last = convergence.get("last_argmax_change_epoch")
    parts.append("the argmax never changed" if last is None else f"last change in epoch {last}")
    return "convergence: " + ", ".join(parts)


def row_changes(metrics_rows: Sequence[Mapping[str, Any]], index: int) -> int:
    """Argmax changes of row ``index``: its "argmax_changes", else counted from the "arch" of the
    row before it (0 for the first row or when a row lacks "arch")."""
    row = metrics_rows[index]
    if row.get("argmax_changes") is not None:
        return int(row["argmax_changes"])
    if index == 0 or not metrics_rows[index - 1].get("arch") or not row.get("arch"):
        return 0
    return argmax_changes(metrics_rows[index - 1]["arch"], row["arch"])


def convergence_warning(summary: Mapping[str, Any], *, epochs: int, update_every: int, arch_lr: float,
                        warmup_epochs: int | None = None, latency_mode: str = "band",
                        threshold: float = ENTROPY_WARNING_THRESHOLD) -> str | None:
    """None when the final H_n <= ``threshold``; otherwise what it means and which config keys to
    change (the run's search.epochs, arch.update_every, arch.lr, search.warmup_epochs,
    latency.mode). Adam moves a logit by about arch.lr per step, so S steps move it by at most
    about B = S * lr: below ``LOGIT_GAP`` the steps were too few or too small (more and larger
    steps); above it they mostly cancelled (noisy signal: train the weights longer)."""
    value = summary.get("normalised_entropy")
    if value is None or value <= threshold:
        return None
    where = LATENCY_CONSTRAINT.get(latency_mode, "")
    text = (f"warning: the architecture distribution barely moved (normalised entropy {value:.2f}; "
            f"1 = uniform, 0 = one-hot; above {threshold:g} is a warning), so the derived architecture "
            f"is close to a random sample{where}, not a searched one.")
    steps = summary.get("arch_steps")
    budget = None if steps is None else steps * arch_lr
    more_epochs = f"search.epochs={2 * epochs} (now {epochs})"
    if budget is None or budget < LOGIT_GAP:
        if budget is not None:
            text += (f" It took {steps} architecture steps; Adam moves each logit by about arch.lr per "
                     f"step, so by {steps} x {arch_lr:g} = {budget:.3g} at most, while a clear choice "
                     f"needs a gap of about {LOGIT_GAP:g}.")
        fixes = [more_epochs]
        if update_every > 1:
            fixes.append(f"arch.update_every=1 (now {update_every}: {update_every}x the architecture steps)")
        fixes.append(f"arch.lr={10 * arch_lr:.3g} (now {arch_lr:g})")
        return text + f"\nwarning: give the architecture more and larger steps: {', '.join(fixes)}."
    text += (f" Its {steps} steps at arch.lr {arch_lr:g} could have moved each logit by {budget:.3g}, "
             f"so they mostly cancelled: the validation signal is too noisy, or the weights too little "
             f"trained to tell the ops apart.")
    warmup = "search.warmup_epochs" if warmup_epochs is None else \
        f"search.warmup_epochs={max(1, 2 * warmup_epochs)} (now {warmup_epochs})"
    return text + (f"\nwarning: train the weights longer and average more: {warmup}, {more_epochs}, a "
                   f"larger data.valid_batch_size (a larger arch.lr will not help); or let the last "
                   f"epochs settle what the signal left open with arch.entropy_weight=0.1 and, in a "
                   f"target mode, latency.controller_cost=expected (docs/search.md, Convergence).")


def collapse_warning(choices: Choices, parameter_free_tokens: Iterable[str],
                     fraction: float = COLLAPSE_FRACTION) -> str | None:
    """None unless the argmax puts >= ``fraction`` of the decisions on parameter-free ops (tokens in
    ``parameter_free_tokens``: {"zero"} for the chain spaces, {"none", "skip_connect",
    "avg_pool_3x3"} for NAS-Bench-201); then what it means and what to change."""
    tokens = _as_list(choices)
    free = set(parameter_free_tokens)
    hits = [token for token in tokens if token in free]
    if not tokens or len(hits) < fraction * len(tokens):
        return None
    counts = ", ".join(f"{token} x{hits.count(token)}" for token in sorted(set(hits)))
    return (f"warning: the architecture collapsed onto parameter-free ops: {len(hits)} of {len(tokens)} "
            f"decisions chose one ({counts}). Such ops win early because they need no training, not "
            f"because they are better.\nwarning: train the weights longer before the architecture moves "
            f"(search.warmup_epochs) or slow the architecture down (a smaller arch.lr, a larger "
            f"arch.update_every).")
