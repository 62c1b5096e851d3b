"""How the architecture distribution moves during the search: heatmap and animated GIF.

The heatmap is dispatched on the space's class (functools.singledispatch): a chain's rows are
(layer, candidate) pairs and its columns epochs; a graph space's (shared-cell decisions, few of
them) is one panel per shown epoch with one row per decision and one column per candidate token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import singledispatch
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.animation import PillowWriter

from proxylessnas.errors import ProxylessError
from proxylessnas.figures import new_figure
from proxylessnas.figures import save_figure as save
from proxylessnas.space import Arch, GraphSpace, SearchSpace, parse_op
from proxylessnas.viz.diagram import draw_architecture
from proxylessnas.viz.style import op_colour

Space = SearchSpace | GraphSpace


def _with_probs(records: Sequence[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    kept = [record for record in records if record.get("probs")]
    if not kept:
        raise ProxylessError("no metrics record has 'probs'", where,
                             "plot after at least one architecture epoch")
    return kept


def probability_matrix(records: Sequence[dict[str, Any]], space: Space) -> tuple[np.ndarray, list[str]]:
    """Rows (layer, candidate) in space order, columns epochs; row names 'label op'."""
    records = _with_probs(records, "metrics")
    rows, names = [], []
    for layer in space.searched_layers:
        for j, op in enumerate(layer.candidates):
            rows.append([record["probs"][layer.label][j] if layer.label in record["probs"] else np.nan
                         for record in records])
            names.append(f"{layer.label} {op.token}")
    return np.asarray(rows, dtype=float), names


def plot_probability_heatmap(records: Sequence[dict[str, Any]], space: Space,
                             path: str | os.PathLike) -> Path:
    """The candidate probabilities of every searched layer or decision over the epochs."""
    return _heatmap(space, records, path)


@singledispatch
def _heatmap(space, records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    raise TypeError(f"no probability heatmap for {type(space).__name__}")


@_heatmap.register
def _chain_heatmap(space: SearchSpace, records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Per-layer candidate probabilities over epochs; lines separate the layers."""
    matrix, names = probability_matrix(records, space)
    epochs = [record["epoch"] for record in _with_probs(records, "metrics")]
    figure = new_figure(max(5.0, 2.5 + 0.25 * len(epochs)), 1.2 + 0.16 * len(names))
    ax = figure.add_subplot()
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize=6)
    step = max(1, len(epochs) // 12)
    ax.set_xticks(range(0, len(epochs), step), [str(e) for e in epochs[::step]], fontsize=7)
    ax.set_xlabel("epoch")
    boundary = -0.5
    for layer in space.searched_layers[:-1]:
        boundary += len(layer.candidates)
        ax.axhline(boundary, color="white", lw=1.2)
    figure.colorbar(image, ax=ax, label="probability", fraction=0.04)
    ax.set_title("architecture probabilities per layer", fontsize=9)
    return save(figure, path)


MAX_PANELS = 6


def decision_matrix(probs: Mapping[str, Sequence[float]],
                    space: Space) -> tuple[np.ndarray, list[str], list[str]]:
    """One epoch's probabilities as (decisions x candidate tokens, row labels, column tokens).

    Columns are every searched decision's candidate tokens in order of first appearance; a
    decision without that candidate (or missing from ``probs``) has NaN there."""
    decisions = space.searched_layers
    tokens: list[str] = []
    for decision in decisions:
        tokens.extend(op.token for op in decision.candidates if op.token not in tokens)
    matrix = np.full((len(decisions), len(tokens)), np.nan)
    for row, decision in enumerate(decisions):
        for op, p in zip(decision.candidates, probs.get(decision.label, ())):
            matrix[row, tokens.index(op.token)] = p
    return matrix, [decision.label for decision in decisions], tokens


def shown_epochs(count: int, limit: int = MAX_PANELS) -> list[int]:
    """Indices of at most ``limit`` records, evenly spread, the first and the last included."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, limit)})


@_heatmap.register
def _graph_heatmap(space: GraphSpace, records: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """One panel per shown epoch (at most MAX_PANELS, the last included): decisions x candidate
    tokens, each cell written with its probability."""
    records = _with_probs(records, "metrics")
    shown = [records[i] for i in shown_epochs(len(records))]
    _, rows, tokens = decision_matrix(shown[0]["probs"], space)
    panel_width = 0.5 + 0.34 * len(tokens)
    height = 1.9 + 0.26 * len(rows)
    figure = new_figure(1.4 + panel_width * len(shown) + 0.8, height)
    axes = figure.subplots(1, len(shown), squeeze=False)[0]
    figure.subplots_adjust(top=1 - 0.55 / height)  # room for the title above the panels' titles
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    for ax, record in zip(axes, shown):
        matrix, _, _ = decision_matrix(record["probs"], space)
        image = ax.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                          interpolation="nearest")
        for (row, column), p in np.ndenumerate(matrix):
            if not np.isnan(p):
                ax.text(column, row, f"{p:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if p > 0.6 else "white")
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
        ax.set_yticks(range(len(rows)), rows if ax is axes[0] else [], fontsize=7)
        ax.set_title(f"epoch {record['epoch']}", fontsize=8)
    axes[0].set_ylabel("decision", fontsize=8)
    figure.colorbar(image, ax=list(axes), label="probability", fraction=0.04)
    figure.suptitle("architecture probabilities per decision", fontsize=9)
    return save(figure, path)


def _argmax_arch(space: Space, probs: dict[str, list[float]]) -> tuple[Arch, dict[str, float]]:
    ops, chosen = [], {}
    for layer in space.searched_layers:
        p = probs[layer.label]
        j = int(np.argmax(p))
        ops.append(layer.candidates[j])
        chosen[layer.label] = float(p[j])
    return Arch.from_ops(space, ops), chosen


def _stacked_bars(ax, space: Space, probs: dict[str, list[float]]) -> None:
    for x, layer in enumerate(space.searched_layers):
        bottom = 0.0
        for op, p in zip(layer.candidates, probs[layer.label]):
            ax.bar(x, p, bottom=bottom, color=op_colour(op), edgecolor="white", lw=0.4,
                   hatch="xx" if op.is_zero else None)
            bottom += p
    ax.set_xticks(range(len(space.searched_layers)), [layer.label for layer in space.searched_layers],
                  rotation=90, fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel("p", fontsize=8)


def animate_search(records: Sequence[dict[str, Any]], space: Space, path: str | os.PathLike,
                   fps: float = 2.0) -> Path:
    """GIF, one frame per epoch: the argmax architecture (with each choice's probability) above
    the per-layer (or per-decision) probabilities as stacked bars (colours of
    ``style.op_colour``: for chains colour = kernel, lighter = smaller expand; hatched = zero)."""
    records = _with_probs(records, "metrics")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = new_figure(11, 5.2)
    top = figure.add_axes((0.02, 0.53, 0.96, 0.42))  # room above it for the title
    bottom = figure.add_axes((0.06, 0.1, 0.92, 0.24))
    writer = PillowWriter(fps=fps)
    with writer.saving(figure, str(path), dpi=80):
        for record in records:
            top.clear()
            bottom.clear()
            arch, chosen = _argmax_arch(space, record["probs"])
            draw_architecture(top, space, arch, chosen)
            latency = record.get("expected_latency")
            text = f"epoch {record['epoch']}"
            if latency is not None:
                text += f"   E[latency] {latency:.3g} {record.get('latency_unit', '')}"
            top.set_title(text, fontsize=9)
            _stacked_bars(bottom, space, record["probs"])
            writer.grab_frame()
    return path


def arch_from_record(space: Space, record: dict[str, Any]) -> Arch:
    """The record's 'arch' ({label: op}) as an Arch of ``space``."""
    return Arch.from_ops(space, [parse_op(record["arch"][layer.label]) for layer in space.searched_layers])
