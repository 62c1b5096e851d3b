"""NAS-Bench-201 (Dong & Yang, ICLR 2020) as a flat :class:`~proxylessnas.space.graph.GraphSpace`.

Skeleton (the benchmark's ``TinyNetwork``; C = ``channels``, N = ``cells_per_stage``)::

    stem: conv 3x3 -> C + BN                      (edge "stem", op conv_bn_3x3)
    stage 1: N cells at C
    residual reduction block C -> 2C, stride 2    (edge "s2.reduce", op res_block_3x3)
    stage 2: N cells at 2C
    residual reduction block 2C -> 4C, stride 2   (edge "s3.reduce")
    stage 3: N cells at 4C
    head: BN + ReLU, global average pool, linear

The cell: 4 nodes, node j = sum over i < j of op_{j<-i}(node i), node 3 the cell's output::

    +------------------------- 3<-0 ---------------------------+
    |    +-------------- 2<-0 ----------------+                |
    |    |                                    v                v
    n0 --+------ 1<-0 -----> n1 --- 2<-1 ---> n2 --- 3<-2 ---> n3
                             |                                 ^
                             +------------- 3<-1 --------------+

6 decisions, labelled as the benchmark names edges and ordered as its string:
``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``; each is shared by the 3N cells (90 searched edges at
N = 5). Edge labels are ``sS.cB.j<-i`` (stage S = 1..3, cell B = 0..N-1), node labels ``input``,
``stem``, ``sS.in`` (after a reduction block) and ``sS.cB.nJ``.

The benchmark's string lists node 1, 2, 3's inputs, ``|op~i|`` each, joined by ``+``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|

Details checked against D-X-Y/AutoDL-Projects: xautodl/models/cell_operations.py,
cell_infers/tiny_network.py, cell_infers/cells.py and cell_searchs/genotypes.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from proxylessnas.errors import ProxylessError
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import Decision, Edge, GraphHead, GraphSpace
from proxylessnas.space.ops import (
    BNOp,
    ChunkOp,
    ConvBNOp,
    MBConvOp,
    OpSpec,
    PadSkipOp,
    PreConvOp,
    ResBlockOp,
    ZeroOp,
    parse_op,
    parse_ops,
)
from proxylessnas.space.spec import BNSpec

NAME = "nasbench201"
CANDIDATES = "none,skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3"
CELL_NODES = 4
CELL_EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in range(1, CELL_NODES) for i in range(j))
"""(dst, src) of the cell's edges, in the benchmark string's order."""
DECISION_LABELS: tuple[str, ...] = tuple(f"{j}<-{i}" for j, i in CELL_EDGES)
STRING_FORM = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
_INPUT_RE = re.compile(r"^([^|~+]+)~(\d+)$")


def nasbench201(
    *, num_classes: int = 10, resolution: int = 32, in_chs: int = 3, channels: int = 16,
    cells_per_stage: int = 5, candidates: str | Sequence[str] = CANDIDATES, dropout: float = 0.0,
    bn_momentum: float = 0.1, bn_eps: float = 1e-5,
) -> GraphSpace:
    """The NAS-Bench-201 space: stem, 3 stages of ``cells_per_stage`` cells at C, 2C, 4C with
    a residual reduction block between stages, BN-ReLU-pool-linear head; BN eps 1e-5 as torch's
    default (the benchmark's)."""
    where = f"{NAME}: candidates"
    ops = parse_ops(candidates, where)
    bad = [op.token for op in ops if isinstance(op, (ConvBNOp, ResBlockOp, MBConvOp, ZeroOp, PreConvOp, BNOp,
                                                     ChunkOp, PadSkipOp))]
    if bad:
        raise ProxylessError(f"op(s) {', '.join(bad)} are not cell ops", where,
                             "use none, skip_connect, nor_conv_<k>x<k>, avg_pool_<k>x<k>")
    if channels < 1 or cells_per_stage < 1:
        raise ProxylessError("channels and cells_per_stage must be >= 1", NAME,
                             "give positive channels and cells_per_stage")
    decisions = tuple(Decision(label, ops) for label in DECISION_LABELS)
    nodes = ["input", "stem"]
    edges = [Edge("stem", "input", "stem", in_chs, channels, 1, op=ConvBNOp(3))]
    prev, chs = "stem", channels
    for stage in range(1, 4):
        width = channels * 2 ** (stage - 1)
        if stage > 1:
            node = f"s{stage}.in"
            nodes.append(node)
            edges.append(Edge(f"s{stage}.reduce", prev, node, chs, width, 2, op=ResBlockOp(3)))
            prev, chs = node, width
        for cell in range(cells_per_stage):
            names = [prev] + [f"s{stage}.c{cell}.n{j}" for j in range(1, CELL_NODES)]
            nodes.extend(names[1:])
            edges.extend(Edge(f"s{stage}.c{cell}.{j}<-{i}", names[i], names[j], width, width, 1,
                              decision=f"{j}<-{i}") for j, i in CELL_EDGES)
            prev = names[-1]
    return GraphSpace(
        name=NAME, resolution=resolution, in_chs=in_chs, nodes=tuple(nodes), edges=tuple(edges),
        all_decisions=decisions, output=prev, head=GraphHead(chs, num_classes, True, dropout),
        bn=BNSpec(bn_momentum, bn_eps), overrides={})


def _malformed(text: str, why: str) -> ProxylessError:
    return ProxylessError(f"malformed NAS-Bench-201 string ({why}): {text!r}", "arch string",
                          f"write {STRING_FORM} with one op per input, e.g. "
                          "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
                          "nor_conv_3x3~1|nor_conv_1x1~2|")


def parse_string(text: str) -> tuple[OpSpec, ...]:
    """The 6 ops of a benchmark string, in decision order (``1<-0, 2<-0, ..., 3<-2``).

    Each node group lists every earlier node exactly once (any order); tokens are parsed with
    :func:`~proxylessnas.space.ops.parse_op` (an unknown op is an error)."""
    if not isinstance(text, str):
        raise ProxylessError(f"an arch string must be a string, not {type(text).__name__}",
                             "arch string", f"write {STRING_FORM}")
    text = text.strip()
    groups = text.split("+")
    if len(groups) != CELL_NODES - 1:
        raise _malformed(text, f"{len(groups)} node group(s), need {CELL_NODES - 1} joined by '+'")
    ops: dict[tuple[int, int], OpSpec] = {}
    for j, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise _malformed(text, f"node {j}'s group {group!r} must start and end with '|'")
        items = group[1:-1].split("|")
        for item in items:
            match = _INPUT_RE.match(item)
            if match is None:
                raise _malformed(text, f"{item!r} is not op~input")
            i = int(match.group(2))
            if i >= j:
                raise _malformed(text, f"node {j} cannot read node {i}")
            if (j, i) in ops:
                raise _malformed(text, f"node {j} reads node {i} twice")
            ops[(j, i)] = parse_op(match.group(1), f"arch string: edge {j}<-{i}")
        if len(items) != j:
            raise _malformed(text, f"node {j} needs {j} input(s), has {len(items)}")
    return tuple(ops[edge] for edge in CELL_EDGES)


def format_string(ops: Sequence[OpSpec | str]) -> str:
    """The benchmark string of 6 ops given in decision order (inverse of :func:`parse_string`)."""
    ops = list(ops)
    if len(ops) != len(CELL_EDGES):
        raise ProxylessError(f"{len(ops)} ops for {len(CELL_EDGES)} cell edges", "arch string",
                             f"give one op per edge {', '.join(DECISION_LABELS)}")
    tokens = {edge: op if isinstance(op, str) else op.token for edge, op in zip(CELL_EDGES, ops)}
    return "+".join("|" + "|".join(f"{tokens[(j, i)]}~{i}" for i in range(j)) + "|"
                    for j in range(1, CELL_NODES))


@lru_cache(maxsize=1)
def _default_space() -> GraphSpace:
    from proxylessnas.space.presets import get_space

    return get_space(NAME)


def arch_from_string(text: str, space: GraphSpace | None = None, metadata: dict | None = None) -> Arch:
    """The arch of a benchmark string in ``space`` (default: the ``nasbench201`` preset)."""
    space = space or _default_space()
    arch = Arch(space.name, dict(zip(DECISION_LABELS, parse_string(text))), dict(space.overrides),
                dict(metadata or {}))
    arch.validate(space, "arch string")
    return arch


def arch_to_string(arch: Arch) -> str:
    """The benchmark string of an arch of a NAS-Bench-201 space."""
    missing = [label for label in DECISION_LABELS if label not in arch.choices]
    if missing:
        raise ProxylessError(f"arch has no op for cell edge(s) {', '.join(missing)}", "arch",
                             f"give an arch of the {NAME} space")
    return format_string([arch.choices[label] for label in DECISION_LABELS])


def is_arch_string(text: str) -> bool:
    """Whether ``text`` looks like a benchmark string (starts with '|'), not a file path."""
    return isinstance(text, str) and text.strip().startswith("|")
