"""``plot_run(run_dir)``: redraw every plot of a search run into RUN_DIR/plots/."""

from __future__ import annotations

import os
from pathlib import Path

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.metrics import read_metrics
from proxylessnas.space import Arch
from proxylessnas.viz.curves import plot_accuracy_curves, plot_convergence, plot_latency_curve
from proxylessnas.viz.diagram import plot_architecture
from proxylessnas.viz.evolution import animate_search, plot_probability_heatmap

PLOT_FILES = ("architecture.png", "probabilities.png", "search.gif", "latency.png", "accuracy.png",
              "convergence.png")


def plot_run(run_dir: str | os.PathLike) -> list[Path]:
    """Read RUN_DIR/metrics.jsonl and RUN_DIR/arch.json (the space comes from the arch file) and
    write plots/{architecture.png, probabilities.png, search.gif, latency.png, accuracy.png,
    convergence.png};
    returns the paths written (the probability plots need records with 'probs')."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ProxylessError("run directory not found", str(run_dir), "give the --out folder of a search")
    records = read_metrics(run_dir / "metrics.jsonl")
    arch = Arch.load(run_dir / "arch.json")
    space = arch.resolve_space()
    plots = run_dir / "plots"
    title = "derived architecture" + latency_caption(arch.metadata)
    written = [plot_architecture(space, arch, plots / "architecture.png", title=title)]
    if any(record.get("probs") for record in records):
        written.append(plot_probability_heatmap(records, space, plots / "probabilities.png"))
        written.append(animate_search(records, space, plots / "search.gif"))
    written.append(plot_latency_curve(records, plots / "latency.png"))
    written.append(plot_accuracy_curves(records, plots / "accuracy.png"))
    written.append(plot_convergence(records, plots / "convergence.png"))
    return written


def latency_caption(metadata: dict) -> str:
    """' (measured 2.66 ms, target 2.65 ms)' from an arch's metadata, or the predicted cost and its
    unit when nothing was measured; '' when the arch carries neither. (Arch files written before
    ``target_latency_ms`` hold the target as ``target_latency``.)"""
    measured = metadata.get("measured_latency")
    target = metadata.get("target_latency_ms", metadata.get("target_latency"))
    if isinstance(measured, int | float):
        aim = f", target {target:.3g} ms" if isinstance(target, int | float) else ""
        return f" (measured {measured:.3g} ms{aim})"
    predicted = metadata.get("predicted_latency")
    if isinstance(predicted, int | float):
        return f" (predicted {predicted:.3g} {metadata.get('unit', '')})".replace(" )", ")")
    return ""
