"""Figures without pyplot: importing or plotting never changes the caller's matplotlib backend."""

from __future__ import annotations

import os
from pathlib import Path


def new_figure(width: float, height: float):
    """A matplotlib Figure on its own Agg canvas (no pyplot state, nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``figure`` as an image, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
