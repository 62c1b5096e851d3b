"""How far a search's architecture distribution has converged, and plain-words warnings when it
has not: the run's summary of the measures H_n (normalised entropy), m (mean max probability)
and c (argmax changes) of :mod:`proxylessnas.convergence_measures`, and what to change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from proxylessnas.convergence_measures import (
    ENTROPY_WARNING_THRESHOLD,
    Choices,
    mean_max_probability,
    normalised_entropy,
    row_changes,
)
from proxylessnas.errors import ProxylessError

LOGIT_GAP = 2.0  # logit gap (nats) of a clear choice: p = 0.88 against one rival
COLLAPSE_FRACTION = 0.5  # argmax on parameter-free ops for >= this fraction of decisions: collapse
CHAIN_PARAMETER_FREE_OPS = frozenset({"zero"})  # today's chain spaces (MBConv candidates + zero)

LATENCY_CONSTRAINT = {"band": " inside the latency band", "under": " under the latency target"}


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
    tokens = list(choices.values()) if isinstance(choices, Mapping) else list(choices)
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
