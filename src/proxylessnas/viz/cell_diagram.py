"""The architecture diagram of a graph (cell) space: the macro skeleton above, the cell below.

Skeleton (top row), read from the space's edges in order, one box each for:

- a fixed edge (the stem, a reduction block): its label, op and output shape;
- a run of consecutive searched edges of one stage (the labels' first part), with the fixed edges
  of the same blocks (labels ``<stage>.<block>.<edge>``; a block with a searched edge): "N x cell"
  with its output shape. N counts the blocks, or the places where a decision comes back (each
  cell of a shared-cell space names every decision once), so NAS-Bench-201 shows ``stem, s1: 5 x
  cell, s2.reduce, s2: 5 x cell, s3.reduce, s3: 5 x cell`` and ``pyramid-tree`` ``stem, s1: 18 x
  cell, s2: 18 x cell, s3: 18 x cell``;
- the head (pool, linear).

Cell (below): when every decision is labelled ``"j<-i"`` (node j reads node i, as in
NAS-Bench-201) the cell is drawn as a DAG: nodes 0..n (0 the cell's input, n its output), one
arrow per decision from node i to node j, labelled with the chosen op's token (and its
probability when given), coloured by op (``style.op_colour``: one hue per op family); a zero op
(``none``) is a dashed grey arrow, and a node that only receives zeros is greyed. Neighbouring
nodes are joined by straight arrows, longer edges by arcs (above from even nodes, below from odd
ones). The tree cells of ``pyramid-tree`` (12 leaf decisions a block) are drawn as trees, the first
block of each stage (``viz/tree_cell.py``). Other labels fall back to a list "decision -> op", or
past ``MAX_LISTED`` decisions to how many decisions chose each op.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch

from proxylessnas.space import Arch, Decision, Edge, GraphSpace
from proxylessnas.viz.style import FIXED_COLOUR, op_colour, op_label
from proxylessnas.viz.tree_cell import HEIGHT as TREE_HEIGHT
from proxylessnas.viz.tree_cell import WIDTH as TREE_WIDTH
from proxylessnas.viz.tree_cell import draw_tree_cell, shown_blocks, tree_blocks

BOX_WIDTH = 2.2
BOX_HEIGHT = 1.15
BOX_GAP = 0.5
NODE_SPACING = 3.3
NODE_RADIUS = 0.36
SKELETON_Y = 3.4
"""Bottom of the skeleton row; the cell's nodes lie on y = 0."""
CELL_COLOUR = "#e3eefb"
ZERO_LINE = "0.55"
LIST_LINE = 0.42
LIST_CHAR = 0.15
"""Line height and monospace character width of the fallback list, in drawing units."""
MAX_LISTED = 24
"""Most decisions listed one by one; more are tallied by op."""
SCALE = 0.42
"""Inches per drawing unit in :meth:`CellDiagram.size`."""
_EDGE_LABEL = re.compile(r"^(\d+)<-(\d+)$")


@dataclass(frozen=True)
class SkeletonBox:
    """One box of the skeleton row: its text lines, and how many cells it stands for (0: a
    fixed edge or the head)."""

    lines: tuple[str, ...]
    cells: int = 0


@dataclass(frozen=True)
class CellEdge:
    """A decision drawn as the arrow ``src -> dst`` of the cell."""

    decision: Decision
    src: int
    dst: int


def _shape_text(space_shapes: Mapping, node: str) -> str:
    shape = space_shapes[node]
    return f"{shape.channels}ch {shape.height}x{shape.width}"


def count_cells(edges: list[Edge]) -> int:
    """Cells in a run of searched edges: a new cell starts where a decision comes back."""
    cells, seen = 0, set()
    for edge in edges:
        if not cells or edge.decision in seen:
            cells, seen = cells + 1, set()
        seen.add(edge.decision)
    return cells


def _block(edge: Edge) -> str:
    return edge.label.rsplit(".", 1)[0] if edge.label.count(".") >= 2 else edge.label


def skeleton(space: GraphSpace) -> list[SkeletonBox]:
    """The skeleton row (see the module docstring)."""
    shapes = space.node_shapes()
    boxes: list[SkeletonBox] = []
    run: list[Edge] = []
    searched_blocks = {_block(e) for e in space.edges if e.decision is not None}

    def close_run() -> None:
        if run:
            first = run[0].label
            stage = first.split(".")[0] + ": " if "." in first else ""
            cells = max(count_cells([e for e in run if e.decision is not None]),
                        len({_block(e) for e in run}))
            boxes.append(SkeletonBox((f"{stage}{cells} x cell", _shape_text(shapes, run[-1].dst)),
                                     cells))
            run.clear()

    for edge in space.edges:
        if edge.decision is not None or _block(edge) in searched_blocks:
            if run and edge.label.split(".")[0] != run[0].label.split(".")[0]:
                close_run()
            run.append(edge)
            continue
        close_run()
        boxes.append(SkeletonBox((edge.label, op_label(edge.op), _shape_text(shapes, edge.dst))))
    close_run()
    head = space.head
    boxes.append(SkeletonBox(("head", ("BN ReLU " if head.bn_relu else "") + "pool",
                              f"FC {head.num_classes}")))
    return boxes


def cell_edges(space: GraphSpace) -> list[CellEdge] | None:
    """The decisions as cell edges when every label reads ``"j<-i"`` with i < j, else None."""
    edges = []
    for decision in space.all_decisions:
        match = _EDGE_LABEL.match(decision.label)
        if match is None or int(match.group(2)) >= int(match.group(1)):
            return None
        edges.append(CellEdge(decision, int(match.group(2)), int(match.group(1))))
    return edges or None


def dead_nodes(edges: list[CellEdge], ops: Mapping[str, object]) -> set[int]:
    """Nodes (not 0) whose every input is a zero op or a dead node: they are always 0."""
    nodes = sorted({e.dst for e in edges})
    dead: set[int] = set()
    for node in nodes:
        inputs = [e for e in edges if e.dst == node]
        if all(ops[e.decision.label].is_zero or e.src in dead for e in inputs):
            dead.add(node)
    return dead


class CellDiagram:
    """Skeleton plus cell of a :class:`~proxylessnas.space.graph.GraphSpace` architecture."""

    def __init__(self, space: GraphSpace) -> None:
        self.space = space
        self.boxes = skeleton(space)
        self.edges = cell_edges(space)
        blocks = None if self.edges else tree_blocks(space)
        self.trees = shown_blocks(blocks) if blocks else []

    # -- layout ------------------------------------------------------------------------------
    @property
    def width(self) -> float:
        """Width of the skeleton row (the drawing's width)."""
        return len(self.boxes) * BOX_WIDTH + (len(self.boxes) - 1) * BOX_GAP

    @property
    def num_nodes(self) -> int:
        return max(e.dst for e in self.edges) + 1 if self.edges else 0

    def _rad(self, edge: CellEdge) -> float:
        """arc3 curvature: 0 for neighbours, then wider arcs, above (< 0) from even nodes."""
        span = edge.dst - edge.src
        if span == 1:
            return 0.0
        magnitude = 0.3 + 0.13 * (span - 2)
        return -magnitude if edge.src % 2 == 0 else magnitude

    def _frame(self) -> tuple[float, float, float, float]:
        """(left, bottom, width, height) of the cell's frame; the cell's nodes lie on y = 0."""
        if self.edges:
            span = (self.num_nodes - 1) * NODE_SPACING
            bulge = [-self._rad(e) * (e.dst - e.src) * NODE_SPACING / 2 for e in self.edges]
            bottom, top = min([0.0, *bulge]) - 0.8, max([0.0, *bulge]) + 0.8
            return (self.width - span) / 2 - 1.0, bottom, span + 2.0, top - bottom
        if self.trees:
            width, height = len(self.trees) * TREE_WIDTH, TREE_HEIGHT + 0.5
            return (self.width - width) / 2, SKELETON_Y - 0.9 - height, width, height
        tallied = len(self.space.all_decisions) > MAX_LISTED
        lines = max(1, len(self._tally(None)) + 1 if tallied else len(self.space.all_decisions))
        chars = max([len(f"{d.label} -> {op.token}  (p=0.00)") for d in self.space.all_decisions
                     for op in d.candidates] or [16])
        width = max(4.0, LIST_CHAR * chars + 1.0)
        height = 0.75 + LIST_LINE * lines
        return (self.width - width) / 2, SKELETON_Y - 0.9 - height, width, height

    def _x_range(self) -> tuple[float, float]:
        """Leftmost and rightmost x of the drawing (the cell's frame may be wider than the row)."""
        left, _, width, _ = self._frame()
        return min(0.0, left - 0.1), max(self.width, left + width + 0.1)

    def size(self, arch: Arch) -> tuple[float, float]:
        _, bottom, _, _ = self._frame()
        low, high = self._x_range()
        height = SKELETON_Y + BOX_HEIGHT + 0.6 - bottom
        return max(6.0, (high - low + 0.4) * SCALE), height * SCALE + 0.7

    # -- drawing -----------------------------------------------------------------------------
    def draw(self, ax: Axes, arch: Arch, probabilities: Mapping[str, float] | None = None) -> None:
        self._draw_skeleton(ax)
        left, bottom, width, height = self._frame()
        ax.add_patch(FancyBboxPatch((left, bottom), width, height, boxstyle="round,pad=0.1",
                                    facecolor=CELL_COLOUR, edgecolor="0.6", lw=0.8, ls="--", zorder=0))
        cells = sum(box.cells for box in self.boxes)
        shared = len({e.decision for e in self.space.searched_edges}) < len(self.space.searched_edges)
        title = "cell" if cells < 2 else f"cell, used {cells} times" if shared else \
            f"{cells} cells, each with its own decisions"
        if self.trees:
            title += f" (shown: {', '.join(self.trees)}, the first block of each stage)"
        ax.text(left + 0.1, bottom + height - 0.05, title, fontsize=7, va="top", ha="left", color="0.3")
        if self.edges:
            self._draw_cell(ax, arch, probabilities or {}, left + 1.0)
        elif self.trees:
            for i, block in enumerate(self.trees):
                draw_tree_cell(ax, self.space, arch, block, left + i * TREE_WIDTH, bottom,
                               probabilities or {})
        else:
            self._draw_list(ax, arch, probabilities or {}, left + 0.6, bottom + height - 0.65)
        low, high = self._x_range()
        ax.set_xlim(low - 0.2, high + 0.2)
        ax.set_ylim(bottom - 0.2, SKELETON_Y + BOX_HEIGHT + 0.6)
        ax.set_aspect("equal")
        ax.axis("off")
        self._legend(ax)

    def _draw_skeleton(self, ax: Axes) -> None:
        x = 0.0
        for i, box in enumerate(self.boxes):
            ax.add_patch(FancyBboxPatch((x, SKELETON_Y), BOX_WIDTH, BOX_HEIGHT, boxstyle="round,pad=0.03",
                                        facecolor=CELL_COLOUR if box.cells else FIXED_COLOUR,
                                        edgecolor="black", lw=1.4 if box.cells else 1))
            ax.text(x + BOX_WIDTH / 2, SKELETON_Y + BOX_HEIGHT / 2, "\n".join(box.lines), ha="center",
                    va="center", fontsize=6.5, linespacing=1.3,
                    fontweight="bold" if box.cells else "normal")
            if i:
                ax.annotate("", (x - 0.04, SKELETON_Y + BOX_HEIGHT / 2),
                            (x - BOX_GAP + 0.04, SKELETON_Y + BOX_HEIGHT / 2),
                            arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 0.8,
                                        "shrinkA": 0, "shrinkB": 0})
            x += BOX_WIDTH + BOX_GAP

    def _draw_cell(self, ax: Axes, arch: Arch, probabilities: Mapping[str, float], left: float) -> None:
        ops = {e.decision.label: arch.op(self.space, e.decision.label) for e in self.edges}
        dead = dead_nodes(self.edges, ops)
        last = self.num_nodes - 1
        nodes = {}
        for j in range(self.num_nodes):
            x = left + j * NODE_SPACING
            nodes[j] = Circle((x, 0.0), NODE_RADIUS, facecolor="0.88" if j in dead else "white",
                              edgecolor="0.5" if j in dead else "black", lw=1.2,
                              ls="--" if j in dead else "-", zorder=3)
            ax.add_patch(nodes[j])
            ax.text(x, 0.0, str(j), ha="center", va="center", fontsize=8, zorder=4,
                    color="0.45" if j in dead else "black")
            role = "input" if j == 0 else "output" if j == last else ""
            if role:
                ax.text(x, -NODE_RADIUS - 0.12, role, ha="center", va="top", fontsize=6, color="0.35",
                        zorder=4)
        for edge in self.edges:
            op = ops[edge.decision.label]
            rad = self._rad(edge)
            colour = ZERO_LINE if op.is_zero else op_colour(op)
            ax.add_patch(FancyArrowPatch(
                (left + edge.src * NODE_SPACING, 0.0), (left + edge.dst * NODE_SPACING, 0.0),
                patchA=nodes[edge.src], patchB=nodes[edge.dst], connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>", mutation_scale=9, color=colour, lw=1.1 if op.is_zero else 2.0,
                ls="--" if op.is_zero else "-", zorder=2))
            # the arc's midpoint: the chord's middle moved by -rad * (chord length) / 2 in y
            x = left + (edge.src + edge.dst) * NODE_SPACING / 2
            y = -rad * (edge.dst - edge.src) * NODE_SPACING / 2
            text = op_label(op)
            if edge.decision.label in probabilities:
                text += f"\np={probabilities[edge.decision.label]:.2f}"
            ax.text(x, y, text, ha="center", va="center", fontsize=6.5, zorder=5,
                    color="0.4" if op.is_zero else "black",
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white",
                          "edgecolor": colour, "lw": 0.8})

    def _tally(self, arch: Arch | None) -> dict:
        """Op -> how many decisions chose it (every candidate, 0 where none did)."""
        counts: dict = {}
        for decision in self.space.all_decisions:
            for op in decision.candidates:
                counts.setdefault(op, 0)
            if arch is not None:
                counts[arch.op(self.space, decision.label)] += 1
        return counts

    def _draw_list(self, ax: Axes, arch: Arch, probabilities: Mapping[str, float], left: float,
                   top: float) -> None:
        if not self.space.all_decisions:
            ax.text(left, top, "(no decisions)", fontsize=7, va="top", color="0.4")
        if len(self.space.all_decisions) > MAX_LISTED:
            ax.text(left - 0.45, top, f"{len(self.space.all_decisions)} decisions chose:", fontsize=7,
                    va="center", family="monospace")
            for i, (op, count) in enumerate(self._tally(arch).items(), start=1):
                y = top - LIST_LINE * i
                ax.add_patch(Circle((left - 0.35, y), 0.12, facecolor=op_colour(op), edgecolor="0.3", lw=0.6))
                ax.text(left - 0.1, y, f"{op_label(op)}: {count}", fontsize=7, va="center",
                        family="monospace")
            return
        for i, decision in enumerate(self.space.all_decisions):
            op = arch.op(self.space, decision.label)
            text = f"{decision.label} -> {op_label(op)}"
            if decision.label in probabilities:
                text += f"  (p={probabilities[decision.label]:.2f})"
            y = top - LIST_LINE * i
            ax.add_patch(Circle((left - 0.35, y), 0.12, facecolor=op_colour(op), edgecolor="0.3", lw=0.6))
            ax.text(left - 0.1, y, text, fontsize=7, va="center", family="monospace")

    def _legend(self, ax: Axes) -> None:
        ops = []
        for decision in self.space.all_decisions:
            ops.extend(op for op in decision.candidates if op not in ops)
        handles = [Patch(facecolor="white", edgecolor=ZERO_LINE, ls="--", label=op_label(op)) if op.is_zero
                   else Patch(facecolor=op_colour(op), edgecolor="black", label=op_label(op))
                   for op in ops]
        if handles:
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                      ncol=min(len(handles), 6), fontsize=7, frameon=False, title="cell ops",
                      title_fontsize=7)
