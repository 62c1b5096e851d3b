"""The tree cell of a ``pyramid-tree`` block, drawn from the space's own edges.

A block's cell (``space/pyramid_tree.py``) is a tree read top-down::

    root --chunk b--> x_b --e_b e--> m_be ==e_be0, e_be1==> t_b --BN--> cell <--skip-- x_b

Nodes sit on fixed rows (root; x0 x1; m00 m01 m10 m11; t0 t1; cell); each searched leaf edge is an
arrow labelled with the chosen op (and its probability when given) and coloured by op family as in
the NAS-Bench-201 cell; the two parallel edges m_be -> t_b bend apart. Fixed edges (chunks, branch
BN, branch skips) are thin grey arrows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyArrowPatch

from proxylessnas.space import Arch, GraphSpace
from proxylessnas.viz.style import op_colour, op_label

X_UNIT = 1.9
Y_UNIT = 2.1
RADIUS = 0.3
LAYOUT = {"root": (0.0, 4), "x0": (-2.0, 3), "x1": (2.0, 3), "m00": (-3.0, 2), "m01": (-1.0, 2),
          "m10": (1.0, 2), "m11": (3.0, 2), "t0": (-2.0, 1), "t1": (2.0, 1), "cell": (0.0, 0)}
"""Node -> (column, row) in units; rows count up from the cell's sum."""
WIDTH = 6 * X_UNIT + 1.6
HEIGHT = 4 * Y_UNIT + 1.4
"""Drawing units one tree takes, labels included."""
FIXED_LINE = "0.6"
_LEAF = re.compile(r"^(?P<block>.+)\.e[01]{2,3}$")


def short_label(label: str) -> str:
    """``sep_conv_3x3`` -> ``sep 3x3``, ``max_pool_3x3`` -> ``max 3x3``, ``skip_connect`` -> ``skip``."""
    for long, short in (("sep_conv_", "sep "), ("dil_conv_", "dil "), ("_pool_", " "),
                        ("skip_connect", "skip")):
        label = label.replace(long, short)
    return label


def tree_blocks(space: GraphSpace) -> list[str] | None:
    """The blocks (``sS.bB``) when every decision is a tree-cell leaf edge ``<block>.e<path>`` of
    a block with the tree's nodes, else None."""
    blocks: list[str] = []
    nodes = set(space.nodes)
    for decision in space.all_decisions:
        match = _LEAF.match(decision.label)
        if match is None or any(f"{match['block']}.{name}" not in nodes for name in LAYOUT):
            return None
        if match["block"] not in blocks:
            blocks.append(match["block"])
    return blocks or None


def shown_blocks(blocks: list[str]) -> list[str]:
    """The first block of each stage (``sS.b0``), at most three trees."""
    firsts = [b for b in blocks if b.endswith(".b0")] or blocks[:1]
    return firsts[:3]


def draw_tree_cell(ax: Axes, space: GraphSpace, arch: Arch, block: str, left: float, bottom: float,
                   probabilities: Mapping[str, float]) -> None:
    """One block's tree with its bottom-left corner at (left, bottom)."""
    centre = left + WIDTH / 2
    positions = {f"{block}.{name}": (centre + col * X_UNIT, bottom + 0.5 + row * Y_UNIT)
                 for name, (col, row) in LAYOUT.items()}
    circles = {}
    for node, (x, y) in positions.items():
        circles[node] = Circle((x, y), RADIUS, facecolor="white", edgecolor="black", lw=1.0, zorder=3)
        ax.add_patch(circles[node])
        ax.text(x, y, node.rsplit(".", 1)[1], ha="center", va="center", fontsize=5.5, zorder=4)
    ax.text(centre, bottom + HEIGHT - 0.35, f"{block}: tree cell", ha="center", va="top", fontsize=7,
            fontweight="bold")
    edges = [e for e in space.edges if e.src in positions and e.dst in positions]
    pairs = Counter((e.src, e.dst) for e in edges)
    seen: Counter = Counter()
    for edge in edges:
        pair = (edge.src, edge.dst)
        seen[pair] += 1
        rad = (0.35 if seen[pair] == 1 else -0.35) if pairs[pair] > 1 else 0.0
        (x0, y0), (x1, y1) = positions[edge.src], positions[edge.dst]
        if edge.decision is None:
            ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), patchA=circles[edge.src],
                                         patchB=circles[edge.dst], connectionstyle=f"arc3,rad={rad}",
                                         arrowstyle="-|>", mutation_scale=6, color=FIXED_LINE, lw=0.7,
                                         ls=":" if edge.op is not None and edge.op.token == "skip_connect"
                                         else "-", zorder=1))
            continue
        op = arch.op(space, edge.decision)
        colour = op_colour(op)
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), patchA=circles[edge.src], patchB=circles[edge.dst],
                                     connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=8,
                                     color=colour, lw=1.8, zorder=2))
        # the arc's midpoint: the chord's middle moved off the chord by rad * length / 2
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        mx, my = mx + rad * (y1 - y0) / 2, my - rad * (x1 - x0) / 2
        text = short_label(op_label(op))
        if edge.decision in probabilities:
            text += f"\np={probabilities[edge.decision]:.2f}"
        ax.text(mx, my, text, ha="center", va="center", fontsize=5, zorder=5,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": colour, "lw": 0.6})
