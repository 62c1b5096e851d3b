"""The tree-cell space on a PyramidNet backbone (``pyramid-tree``): the space of the paper's
CIFAR-10 model (ProxylessNAS, Cai et al. ICLR 2019, section 4.1; the tree cell of "Path-Level
Network Transformation for Efficient Architecture Search", Cai et al. ICML 2018), as a flat
:class:`~proxylessnas.space.graph.GraphSpace`.

Backbone (PyramidNet with bottleneck blocks, Han et al. CVPR 2017; N = ``blocks_per_stage``)::

    stem: conv 3x3 -> C0 + BN                          (edge "stem", op conv_bn_3x3)
    3 stages of N blocks, strides 1, 2, 2 (the first block of a stage carries it)
    head: BN + ReLU, global average pool, linear

Block i = 1 .. 3N has the inner width ``C_i = even(round(C0 + alpha * i / (3N)))`` (rounded
half up, then down to an even number: the cell splits its root's output in two) and the outer
width ``bottleneck * C_i``. Block ``sS.bB`` (S = 1..3, B = 0..N-1) from node ``in``::

    in  --bn_conv_1x1-->  bottle (C)  --bn_relu_conv_3x3_g2 (stride s)-->  root (2C)
    root --chunk_0--> x0,  root --chunk_1--> x1                      (split in two halves)
    xb --eb0--> mb0, xb --eb1--> mb1                                 (level-2 copy node, b = 0, 1)
    mbe --ebe0--> tb, mbe --ebe1--> tb                               (level-3 copy nodes, e = 0, 1)
    cell = bn(t0) + x0 + bn(t1) + x1                                 (branch BN, branch skip)
    out  = bn(bn_relu_conv_1x1(cell)) + pad_skip(in)                 (out bottleneck, final BN)

The 12 leaf edges ``eb e`` and ``eb e f`` (labels ``sS.bB.e00`` .. ``sS.bB.e111``) are each a
decision of their own over ``candidates`` (default: the 7 ops of the published cells). The
grouped root conv shuffles its channels (2 groups); ``pad_skip`` is the identity with zero
channels appended, after a 2x2 average pool in the stride-2 blocks. Layer order BN -> ReLU ->
weight throughout (``ops/tree_blocks.py``); BN eps 1e-5, momentum 0.1 (torch's defaults).

At N = 18, alpha = 84, bottleneck 4 (the paper's model) the widths grow 18 .. 100 inside and
72 .. 400 outside; ``nets/pyramid_tree_zoo.py`` holds the found ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from proxylessnas.errors import ProxylessError
from proxylessnas.space.graph import Decision, Edge, GraphHead, GraphSpace
from proxylessnas.space.ops import (
    SKIP,
    AvgPoolOp,
    BNOp,
    ChunkOp,
    ConvBNOp,
    DilConvOp,
    MaxPoolOp,
    OpSpec,
    PadSkipOp,
    PreConvOp,
    SepConvOp,
    parse_ops,
)
from proxylessnas.space.spec import BNSpec

NAME = "pyramid-tree"
CANDIDATES = "sep_conv_{3x3,5x5,7x7},dil_conv_3x3,avg_pool_3x3,max_pool_3x3,skip_connect"
LEAF_OPS = (SepConvOp, DilConvOp, AvgPoolOp, MaxPoolOp, type(SKIP))
"""The op types a leaf edge may take (they keep the channels and the size)."""
STAGE_STRIDES = (1, 2, 2)
LEAF_PATHS: tuple[str, ...] = ("00", "01", "10", "11", "000", "001", "010", "011", "100", "101", "110", "111")
"""The leaf edges of one cell, in decision order: level 2 (branch, edge), then level 3 (branch,
edge, child edge)."""

BLOCK_EDGES: tuple[str, ...] = ("in_bottle", "root", "chunk0", "chunk1", *(f"e{path}" for path in LEAF_PATHS),
                                "branch_bn0", "branch_skip0", "branch_bn1", "branch_skip1", "out_bottle",
                                "final_bn", "shortcut")
"""A block's edges in ``space.edges`` order, labelled ``sS.bB.<name>``."""


def block_edge_index(block: int, name: str) -> int:
    """Position in ``space.edges`` of edge ``name`` of block ``block`` (0-based; edge 0 is the stem)."""
    return 1 + len(BLOCK_EDGES) * block + BLOCK_EDGES.index(name)


def block_widths(stem_width: int, blocks_per_stage: int, alpha: int,
                 bottleneck: int) -> list[tuple[int, int]]:
    """(inner, outer) width of every block, i = 1 .. 3N: inner = even(round(C0 + alpha i / 3N))."""
    total = 3 * blocks_per_stage
    widths = []
    for i in range(1, total + 1):
        inner = math.floor(Fraction(stem_width) + Fraction(alpha * i, total) + Fraction(1, 2))
        inner = max(2, inner - inner % 2)
        widths.append((inner, inner * bottleneck))
    return widths


def block_label(index: int, blocks_per_stage: int) -> str:
    """``sS.bB`` of block ``index`` (0-based over the whole net)."""
    return f"s{index // blocks_per_stage + 1}.b{index % blocks_per_stage}"


def _block(prefix: str, src: str, in_chs: int, inner: int, outer: int, stride: int
           ) -> tuple[list[str], list[Edge]]:
    """Nodes and edges of one residual tree block (see the module docstring)."""
    n = {name: f"{prefix}.{name}" for name in (
        "bottle", "root", "x0", "x1", "m00", "m01", "m10", "m11", "t0", "t1", "cell", "body", "out")}
    c = inner
    edges = [Edge(f"{prefix}.in_bottle", src, n["bottle"], in_chs, c, 1, op=PreConvOp(1, relu=False)),
             Edge(f"{prefix}.root", n["bottle"], n["root"], c, 2 * c, stride, op=PreConvOp(3, groups=2))]
    edges += [Edge(f"{prefix}.chunk{b}", n["root"], n[f"x{b}"], 2 * c, c, 1, op=ChunkOp(b)) for b in (0, 1)]
    for path in LEAF_PATHS:  # level 2: x_b -> m_be; level 3: m_be -> t_b
        ends = (f"x{path[0]}", f"m{path}") if len(path) == 2 else (f"m{path[:2]}", f"t{path[0]}")
        edges.append(Edge(f"{prefix}.e{path}", n[ends[0]], n[ends[1]], c, c, 1, decision=f"{prefix}.e{path}"))
    for b in (0, 1):
        edges += [Edge(f"{prefix}.branch_bn{b}", n[f"t{b}"], n["cell"], c, c, 1, op=BNOp()),
                  Edge(f"{prefix}.branch_skip{b}", n[f"x{b}"], n["cell"], c, c, 1, op=SKIP)]
    edges += [Edge(f"{prefix}.out_bottle", n["cell"], n["body"], c, outer, 1, op=PreConvOp(1)),
              Edge(f"{prefix}.final_bn", n["body"], n["out"], outer, outer, 1, op=BNOp()),
              Edge(f"{prefix}.shortcut", src, n["out"], in_chs, outer, stride, op=PadSkipOp())]
    return list(n.values()), edges


def pyramid_tree(
    *, num_classes: int = 10, resolution: int = 32, in_chs: int = 3, stem_width: int = 16,
    blocks_per_stage: int = 18, alpha: int = 84, bottleneck: int = 4,
    candidates: str | Sequence[str] = CANDIDATES, dropout: float = 0.0, bn_momentum: float = 0.1,
    bn_eps: float = 1e-5,
) -> GraphSpace:
    """The ``pyramid-tree`` space; the defaults are the paper's CIFAR-10 model (N = 18,
    alpha = 84, bottleneck 4: 54 blocks, 648 decisions). ``blocks_per_stage=2, alpha=12`` is a
    CPU-sized variant."""
    where = f"{NAME}: candidates"
    ops: tuple[OpSpec, ...] = parse_ops(candidates, where)
    bad = [op.token for op in ops if not isinstance(op, LEAF_OPS)]
    if bad:
        raise ProxylessError(f"op(s) {', '.join(bad)} are not tree-cell leaf ops", where,
                             "use sep_conv_<k>x<k>, dil_conv_<k>x<k>, avg_pool_<k>x<k>, max_pool_<k>x<k>, "
                             "skip_connect")
    if min(blocks_per_stage, bottleneck, stem_width) < 1 or alpha < 0:
        raise ProxylessError("blocks_per_stage, bottleneck and stem_width must be >= 1, alpha >= 0", NAME,
                             "give positive sizes")
    nodes, decisions = ["input", "stem"], []
    edges = [Edge("stem", "input", "stem", in_chs, stem_width, 1, op=ConvBNOp(3))]
    src, chs = "stem", stem_width
    for index, (inner, outer) in enumerate(block_widths(stem_width, blocks_per_stage, alpha, bottleneck)):
        stage, position = divmod(index, blocks_per_stage)
        stride = STAGE_STRIDES[stage] if position == 0 else 1
        prefix = block_label(index, blocks_per_stage)
        block_nodes, block_edges = _block(prefix, src, chs, inner, outer, stride)
        nodes += block_nodes
        edges += block_edges
        decisions += [Decision(f"{prefix}.e{path}", ops) for path in LEAF_PATHS]
        src, chs = block_nodes[-1], outer
    return GraphSpace(
        name=NAME, resolution=resolution, in_chs=in_chs, nodes=tuple(nodes), edges=tuple(edges),
        all_decisions=tuple(decisions), output=src, head=GraphHead(chs, num_classes, True, dropout),
        bn=BNSpec(bn_momentum, bn_eps), overrides={})


def drop_path_units(space: GraphSpace) -> tuple[tuple[int, ...], ...]:
    """The drop-path units of every tree cell: each branch of each tree node, as the positions in
    ``space.edges`` of the edges that carry it into its merge node (see ``nets/drop_path.py``).

    Per block, 14 units: the 8 level-3 leaf edges ``e<b><e><f>`` alone; the 4 level-2 branches
    ``e<b><e>`` (that edge and the two leaves under it: dropped where those leaves enter t_b);
    the 2 root branches b (``branch_bn<b>`` and ``branch_skip<b>``, the branch's BN and skip)."""
    index = {edge.label: i for i, edge in enumerate(space.edges)}
    prefixes = [label[: -len(".root")] for label in index if label.endswith(".root")]
    units = []
    for prefix in prefixes:
        units += [(index[f"{prefix}.e{path}"],) for path in LEAF_PATHS if len(path) == 3]
        units += [(index[f"{prefix}.e{path}0"], index[f"{prefix}.e{path}1"]) for path in LEAF_PATHS
                  if len(path) == 2]
        units += [(index[f"{prefix}.branch_bn{b}"], index[f"{prefix}.branch_skip{b}"]) for b in (0, 1)]
    return tuple(units)
