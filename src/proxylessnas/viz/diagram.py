"""The architecture diagram of a chain or graph space, dispatched once on the space's class.

:func:`architecture_diagram` (functools.singledispatch) gives the drawer of a space:
:class:`ChainDiagram` for a chain (:class:`~proxylessnas.space.spec.SearchSpace`),
:class:`~proxylessnas.viz.cell_diagram.CellDiagram` for a graph
(:class:`~proxylessnas.space.graph.GraphSpace`); :func:`draw_architecture` and
:func:`plot_architecture` go through it, so a new kind of space registers its own drawer.

The chain diagram, as in the paper's figure: one box per block along the chain. Box width grows
with the expand ratio (MB1 narrow, MB6 wide), the colour gives the kernel size, a skipped (zero)
block is a dashed, empty box; dotted lines mark stage boundaries, annotated above with the
stage's width and below with its output feature-map size (from infer_shapes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import singledispatch
from pathlib import Path
from typing import Protocol

from matplotlib.axes import Axes
from matplotlib.patches import Patch, Rectangle

from proxylessnas.figures import new_figure
from proxylessnas.figures import save_figure as save
from proxylessnas.space import Arch, GraphSpace, SearchSpace, shapes_by_label
from proxylessnas.viz.cell_diagram import CellDiagram
from proxylessnas.viz.style import kernel_legend, op_colour, op_label, op_width

BOX_HEIGHT = 2.0
GAP = 0.12


def _stage(label: str) -> str:
    return label.split(".")[0]


class Diagram(Protocol):
    """How the architecture of one kind of space is drawn."""

    def size(self, arch: Arch) -> tuple[float, float]:
        """Figure (width, height) in inches for :func:`plot_architecture`."""

    def draw(self, ax: Axes, arch: Arch, probabilities: Mapping[str, float] | None = None) -> None:
        """Draw ``arch`` on ``ax``; ``probabilities`` (label -> p of the chosen op) are written
        beside the choices."""


@singledispatch
def architecture_diagram(space) -> Diagram:
    """The drawer of ``space``'s architectures (dispatched on the space's class)."""
    raise TypeError(f"no architecture diagram for {type(space).__name__}")


@dataclass(frozen=True)
class ChainDiagram:
    """The paper-style chain diagram (see the module docstring)."""

    space: SearchSpace

    def size(self, arch: Arch) -> tuple[float, float]:
        total = 2.0 + sum(op_width(op) + GAP for op in arch.ops(self.space))
        return max(6.0, total * 0.42), 2.6

    def draw(self, ax: Axes, arch: Arch, probabilities: Mapping[str, float] | None = None) -> None:
        _draw_chain(ax, self.space, arch, probabilities)


architecture_diagram.register(SearchSpace, ChainDiagram)
architecture_diagram.register(GraphSpace, CellDiagram)


def draw_architecture(ax: Axes, space: SearchSpace | GraphSpace, arch: Arch,
                      probabilities: Mapping[str, float] | None = None) -> None:
    """Draw ``arch`` on ``ax``; ``probabilities`` (label -> p of the chosen op) are written below."""
    architecture_diagram(space).draw(ax, arch, probabilities)


def _draw_chain(ax: Axes, space: SearchSpace, arch: Arch,
                probabilities: Mapping[str, float] | None = None) -> None:
    shapes = shapes_by_label(space)
    x = 0.0

    def fixed_box(text: str, width: float, colour: str) -> None:
        nonlocal x
        ax.add_patch(Rectangle((x, 0), width, BOX_HEIGHT, facecolor=colour, edgecolor="black", lw=1))
        ax.text(x + width / 2, BOX_HEIGHT / 2, text, rotation=90, ha="center", va="center", fontsize=8)
        x += width + GAP

    stem = space.stem
    fixed_box(f"Conv {stem.kernel_size}x{stem.kernel_size}", 0.7, "#eeeeee")
    stage = None
    stage_count = 0
    for layer in space.layers:
        op = arch.op(space, layer.label)
        if _stage(layer.label) != stage:
            stage = _stage(layer.label)
            edge = x - GAP / 2
            lift = 0.45 * (stage_count % 2)  # stagger: neighbouring short stages do not overlap
            stage_count += 1
            ax.plot([edge, edge], [-0.3 - lift, BOX_HEIGHT + 0.25 + lift], ls=":", color="0.4", lw=1)
            ax.text(edge + 0.05, BOX_HEIGHT + 0.25 + lift, f"{stage}: {layer.out_chs}ch", fontsize=7,
                    va="bottom")
            out = shapes[layer.label].output
            ax.text(edge + 0.05, -0.3 - lift, f"{out.height}x{out.width}", fontsize=7, va="top", color="0.25")
        width = op_width(op)
        if op.is_zero:
            ax.add_patch(Rectangle((x, 0), width, BOX_HEIGHT, facecolor="white", edgecolor="0.45",
                                   lw=1, ls="--"))
            ax.text(x + width / 2, BOX_HEIGHT / 2, "skip", rotation=90, ha="center", va="center",
                    fontsize=7, color="0.4")
        else:
            hatch = "//" if not layer.searchable else None
            ax.add_patch(Rectangle((x, 0), width, BOX_HEIGHT, facecolor=op_colour(op), edgecolor="black",
                                   lw=1, hatch=hatch))
            ax.text(x + width / 2, BOX_HEIGHT / 2, op_label(op), rotation=90, ha="center", va="center",
                    fontsize=7)
        if probabilities and layer.label in probabilities:
            ax.text(x + width / 2, -1.25, f"{probabilities[layer.label]:.2f}", rotation=90, ha="center",
                    va="top", fontsize=6, color="0.2")
        x += width + GAP
    fixed_box(f"Conv 1x1 {space.head.out_chs}", 0.7, "#eeeeee")
    fixed_box(f"Pool FC {space.head.num_classes}", 0.7, "#eeeeee")
    ax.set_xlim(-0.2, x)
    ax.set_ylim(-2.2 if probabilities else -1.2, BOX_HEIGHT + 1.2)
    ax.set_aspect("equal")
    ax.axis("off")
    legend = kernel_legend(op for layer in space.layers for op in layer.candidates)
    handles = [Patch(facecolor=colour, edgecolor="black", label=label) for label, colour in legend]
    handles.append(Patch(facecolor="white", edgecolor="0.45", ls="--", label="skip"))
    ax.legend(handles=handles, loc="upper right", bbox_to_anchor=(1.0, 0.0), ncol=len(handles),
              fontsize=7, frameon=False, title="kernel (width ~ expand ratio; hatched: fixed)",
              title_fontsize=7)


def plot_architecture(space: SearchSpace | GraphSpace, arch: Arch, path: str | os.PathLike,
                      title: str | None = None,
                      probabilities: Mapping[str, float] | None = None) -> Path:
    """Write the diagram of ``arch`` to ``path`` (PNG, SVG, PDF by extension)."""
    diagram = architecture_diagram(space)
    figure = new_figure(*diagram.size(arch))
    ax = figure.add_subplot()
    diagram.draw(ax, arch, probabilities)
    if title:
        ax.set_title(title, fontsize=9)
    return save(figure, path)
