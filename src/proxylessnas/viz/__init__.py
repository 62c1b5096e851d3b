"""Plots of a search: architecture diagram, probability heatmap and GIF, curves (latency, accuracy,
convergence), scatter; for chain and graph (cell) spaces alike (the diagram and the heatmap are
dispatched on the space's class).

Matplotlib is used without pyplot (Agg canvases), so importing this never changes a backend.
"""

from proxylessnas.runtime.metrics import append_metrics, read_metrics
from proxylessnas.viz.curves import (
    plot_accuracy_curves,
    plot_accuracy_vs_latency,
    plot_convergence,
    plot_latency_curve,
)
from proxylessnas.viz.diagram import architecture_diagram, draw_architecture, plot_architecture
from proxylessnas.viz.evolution import (
    animate_search,
    decision_matrix,
    plot_probability_heatmap,
    probability_matrix,
)
from proxylessnas.viz.metrics import entropy
from proxylessnas.viz.run import PLOT_FILES, plot_run

__all__ = [
    "PLOT_FILES", "animate_search", "append_metrics", "architecture_diagram", "decision_matrix",
    "draw_architecture", "entropy",
    "plot_accuracy_curves", "plot_accuracy_vs_latency", "plot_architecture", "plot_convergence",
    "plot_latency_curve",
    "plot_probability_heatmap", "plot_run", "probability_matrix", "read_metrics",
]
