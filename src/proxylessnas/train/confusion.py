"""The confusion-matrix plot written by ``proxyless eval``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from proxylessnas.figures import new_figure, save_figure


def plot_confusion(confusion: Sequence[Sequence[int]], class_names: Sequence[str],
                   path: str | os.PathLike, title: str = "") -> Path:
    """A row-normalised confusion matrix (rows: true class) as a PNG, with counts in the cells
    when there are at most 20 classes."""
    import numpy as np

    counts = np.asarray(confusion, dtype=np.int64)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = len(class_names)
    side = min(14.0, 2.0 + 0.5 * size)
    figure = new_figure(side, side)
    axes = figure.add_subplot()
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    if size <= 50:
        axes.set_xticks(range(size), class_names, rotation=90)
        axes.set_yticks(range(size), class_names)
    if size <= 20:
        for row in range(size):
            for col in range(size):
                axes.text(col, row, str(counts[row, col]), ha="center", va="center", fontsize=7,
                          color="white" if rates[row, col] > 0.5 else "black")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title or "confusion matrix")
    figure.tight_layout()
    return save_figure(figure, path, dpi=120)
