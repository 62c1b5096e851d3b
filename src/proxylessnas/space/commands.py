"""``proxyless space list`` and ``proxyless space show NAME``."""

from __future__ import annotations

from collections import Counter
from functools import singledispatch

from proxylessnas.arguments import resolution
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.presets import get_space, space_names
from proxylessnas.space.shapes import shapes_by_label
from proxylessnas.space.spec import SearchSpace
from proxylessnas.subcommands import add_command, add_group
from proxylessnas.tables import format_table


def register(subparsers) -> None:
    sub = add_group(subparsers, "space", "list and inspect search spaces",
                    "Search-space presets: the paper's ImageNet space, a CIFAR-size space, tiny "
                    "(chains) and NAS-Bench-201 (a graph of decisions).",
                    "proxyless space show proxyless-cifar")
    add_command(sub, "list", "the preset spaces", "proxyless space list").set_defaults(func=_list)
    show = add_command(sub, "show", "layers (or edges and decisions), shapes and candidates of a space",
                       "proxyless space show proxyless-imagenet --resolution 160\n"
                       "  proxyless space show nasbench201 --edges")
    show.add_argument("name", help=f"one of {', '.join(space_names())}")
    show.add_argument("--resolution", type=resolution, default=None, help="input side (default: the space's)")
    show.add_argument("--edges", action="store_true", help="graph spaces: also list every edge")
    show.set_defaults(func=_show)


def scientific(count: int) -> str:
    """``1.56e+04``; exact integers too large for a float (7^648) keep three digits."""
    if count < 10 ** 300:
        return f"{count:.2e}"
    digits = str(count)
    return f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def count_text(count: int) -> str:
    """The exact count with thousands separators, or :func:`scientific` past 10^30."""
    return f"{count:,}" if count < 10 ** 30 else f"about {scientific(count)}"


def _list(args) -> int:
    rows = []
    for name in space_names():
        s = get_space(name)
        rows.append([name, s.resolution, len(s.decisions), s.num_candidate_slots,
                     scientific(s.num_architectures)])
    print(format_table(["name", "resolution", "decisions", "arch params", "architectures"],
                       rows, "lrrrr"))
    return 0


def _show(args) -> int:
    overrides = {"resolution": args.resolution} if args.resolution is not None else {}
    print(describe(get_space(args.name, **overrides), edges=args.edges))
    return 0


@singledispatch
def describe(space, edges: bool = False) -> str:
    """The text ``proxyless space show`` prints for ``space``."""
    raise TypeError(f"cannot describe {type(space).__name__}")


@describe.register
def _describe_chain(space: SearchSpace, edges: bool = False) -> str:
    shapes = shapes_by_label(space)
    rows = [[layer.label, str(shapes[layer.label].input), str(shapes[layer.label].output),
             layer.stride, ", ".join(op.token for op in layer.candidates)] for layer in space.layers]
    return (f"{space.name}: {space.resolution}x{space.resolution}, {len(space.searched_layers)} "
            f"searched layers, {space.num_candidate_slots} architecture parameters\n"
            + format_table(["layer", "input", "output", "stride", "candidates"], rows, "lllrl"))


@describe.register
def _describe_graph(space: GraphSpace, edges: bool = False) -> str:
    shapes = space.infer_shapes()
    head = shapes[-1]
    lines = [f"{space.name}: {space.resolution}x{space.resolution}x{space.in_chs}, graph of "
             f"{len(space.nodes)} nodes and {len(space.edges)} edges ({len(space.searched_edges)} "
             f"searched), {len(space.decisions)} decisions, {space.num_candidate_slots} architecture "
             f"parameters, {count_text(space.num_architectures)} architectures"]
    fixed = [[e.label, f"{e.src} -> {e.dst}", e.op.token, str(s.input), str(s.output), e.stride]
             for e, s in zip(space.edges, shapes) if e.op is not None]
    fixed.append(["head", f"{space.output} -> logits",
                  ("bn_relu_" if space.head.bn_relu else "") + "pool_linear", str(head.input),
                  str(head.output), ""])
    lines += ["", "skeleton (fixed edges and head):",
              format_table(["edge", "nodes", "op", "input", "output", "stride"], fixed, "llllll")]
    rows = []
    for d in space.all_decisions:
        indices = space.edge_indices_of(d.label)
        by_shape = Counter(f"{shapes[i].input}->{shapes[i].output}" for i in indices)
        rows.append([d.label, len(indices), ", ".join(f"{k} x{n}" for k, n in by_shape.items()),
                     ", ".join(op.token for op in d.candidates)])
    lines += ["", "decisions (one alpha vector each, shared by all their edges):",
              format_table(["decision", "edges", "shapes", "candidates"], rows, "lrll")]
    if edges:
        every = [[i, e.label, f"{e.src} -> {e.dst}", e.op.token if e.op is not None else f"<{e.decision}>",
                  str(s.input), str(s.output), e.stride] for i, (e, s) in enumerate(zip(space.edges, shapes))]
        lines += ["", "edges (in order):",
                  format_table(["#", "edge", "nodes", "op or <decision>", "input", "output", "stride"],
                               every, "rllllll")]
    return "\n".join(lines)
