"""Curves over epochs (latency, accuracy, convergence) and the accuracy-vs-latency scatter for reports."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from proxylessnas.convergence_measures import (
    ENTROPY_WARNING_THRESHOLD,
    mean_max_probability,
    normalised_entropy,
    row_changes,
)
from proxylessnas.figures import new_figure
from proxylessnas.figures import save_figure as save


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_latency_curve(records: Sequence[dict[str, Any]], path: str | os.PathLike,
                       tolerance: float = 0.05) -> Path:
    """Expected and argmax latency per epoch, the target with its +-tolerance band, and lambda."""
    figure = new_figure(6.5, 3.6)
    ax = figure.add_subplot()
    unit = next((r["latency_unit"] for r in records if r.get("latency_unit")), "")
    for key, style in (("expected_latency", "-"), ("argmax_latency", "--")):
        epochs, values = _series(records, key)
        if values:
            ax.plot(epochs, values, style, marker=".", label=key.replace("_", " "))
    epochs, targets = _series(records, "target_latency_table")
    if not targets:  # rows written before the key said its unit
        epochs, targets = _series(records, "target_latency")
    if targets:
        target = targets[-1]
        ax.axhline(target, color="black", lw=1, label=f"target {target:.3g}")
        ax.axhspan(target * (1 - tolerance), target * (1 + tolerance), color="0.85", zorder=0,
                   label=f"+-{tolerance:.0%}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"latency ({unit})" if unit else "latency")
    epochs, lambdas = _series(records, "lambda")
    if lambdas:
        twin = ax.twinx()
        twin.plot(epochs, lambdas, ":", color="tab:purple", label="lambda")
        twin.set_ylabel("lambda", color="tab:purple")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("latency during the search", fontsize=9)
    return save(figure, path)


def plot_accuracy_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Train and validation accuracy (left) and losses (right) per epoch."""
    figure = new_figure(9, 3.4)
    left, right = figure.subplots(1, 2)
    for ax, keys, label in ((left, ("train_acc", "valid_acc"), "accuracy"),
                            (right, ("train_loss", "valid_loss"), "loss")):
        for key in keys:
            epochs, values = _series(records, key)
            if values:
                ax.plot(epochs, values, marker=".", label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    figure.suptitle("training during the search", fontsize=9)
    return save(figure, path)


def convergence_series(records: Sequence[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Per epoch: "normalised_entropy", "mean_max_prob" (from the keys, else computed from "probs")
    and "argmax_changes" (the key, else counted from consecutive "arch"); a record with neither
    is left out of that series (older metrics.jsonl files)."""
    computed = {"normalised_entropy": normalised_entropy, "mean_max_prob": mean_max_probability}
    series: dict[str, tuple[list[int], list[float]]] = {}
    for key, compute in computed.items():
        pairs = [(r["epoch"], float(r[key]) if r.get(key) is not None else compute(r["probs"]))
                 for r in records if r.get(key) is not None or r.get("probs")]
        series[key] = ([p[0] for p in pairs], [p[1] for p in pairs])
    rows = list(records)
    changes = [(r["epoch"], float(row_changes(rows, i))) for i, r in enumerate(rows)
               if r.get("argmax_changes") is not None or r.get("arch")]
    series["argmax_changes"] = ([p[0] for p in changes], [p[1] for p in changes])
    return series


def plot_convergence(records: Sequence[dict[str, Any]], path: str | os.PathLike,
                     threshold: float = ENTROPY_WARNING_THRESHOLD) -> Path:
    """Normalised entropy H_n = sum_d H(p_d) / sum_d ln K_d (1 uniform, 0 one-hot) and the mean max
    probability per epoch, the warning threshold on H_n, and argmax changes per epoch as bars;
    curves the records lack are skipped."""
    series = convergence_series(records)
    figure = new_figure(6.5, 3.6)
    ax = figure.add_subplot()
    drawn = False
    for key, style, label in (("normalised_entropy", "-", "normalised entropy"),
                              ("mean_max_prob", "--", "mean max p")):
        epochs, values = series[key]
        if values:
            ax.plot(epochs, values, style, marker=".", label=label)
            drawn = True
    if drawn:
        ax.axhline(threshold, color="0.5", ls=":", lw=1, label=f"warning above {threshold:g}")
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("epoch")
    ax.set_ylabel("normalised entropy, mean max p")
    epochs, changes = series["argmax_changes"]
    if changes:
        twin = ax.twinx()
        twin.bar(epochs, changes, width=0.5, color="tab:red", alpha=0.25, zorder=0)
        twin.set_ylabel("argmax changes", color="tab:red")
        twin.set_ylim(0, max(1.0, max(changes)) * 1.1)
        twin.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_zorder(twin.get_zorder() + 1)  # the curves above the bars
        ax.patch.set_visible(False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if drawn:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no convergence data in these records", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color="0.4")
    ax.set_title("convergence of the architecture distribution", fontsize=9)
    return save(figure, path)


def plot_accuracy_vs_latency(points: Sequence[tuple[str, float, float]], path: str | os.PathLike,
                             unit: str = "ms", target: float | None = None,
                             title: str = "accuracy vs latency") -> Path:
    """Scatter of (name, latency, accuracy) points, labelled; an optional target line."""
    figure = new_figure(5.5, 4.0)
    ax = figure.add_subplot()
    for name, latency, accuracy in points:
        ax.scatter([latency], [accuracy], s=25)
        ax.annotate(name, (latency, accuracy), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if target is not None:
        ax.axvline(target, color="black", ls="--", lw=1, label=f"target {target:.3g} {unit}")
        ax.legend(fontsize=7)
    ax.set_xlabel(f"latency ({unit})")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    return save(figure, path)
