"""``proxyless space list`` and ``proxyless space show NAME``."""

from __future__ import annotations

import argparse

from proxylessnas.space.presets import get_space, space_names
from proxylessnas.space.shapes import shapes_by_label
from proxylessnas.tables import format_table


def register(subparsers) -> None:
    space = subparsers.add_parser(
        "space", help="list and inspect search spaces",
        description="Search-space presets: the paper's ImageNet space, a CIFAR-size space, tiny.",
        epilog="example:\n  proxyless space show proxyless-cifar",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    space.set_defaults(func=lambda args: space.print_help() or 0)
    sub = space.add_subparsers(dest="space_command", metavar="SUBCOMMAND")
    sub.add_parser("list", help="the preset spaces").set_defaults(func=_list)
    show = sub.add_parser("show", help="layers, shapes and candidates of a space",
                          epilog="example:\n  proxyless space show proxyless-imagenet --resolution 160",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("name", help=f"one of {', '.join(space_names())}")
    show.add_argument("--resolution", type=int, default=None, help="input side (default: the space's)")
    show.set_defaults(func=_show)


def _list(args) -> int:
    rows = []
    for name in space_names():
        s = get_space(name)
        rows.append([name, s.resolution, len(s.searched_layers), s.num_candidate_slots,
                     f"{s.num_architectures:.2e}"])
    print(format_table(["name", "resolution", "searched layers", "arch params", "architectures"],
                       rows, "lrrrr"))
    return 0


def _show(args) -> int:
    overrides = {"resolution": args.resolution} if args.resolution else {}
    space = get_space(args.name, **overrides)
    shapes = shapes_by_label(space)
    rows = [[layer.label, str(shapes[layer.label].input), str(shapes[layer.label].output),
             layer.stride, ", ".join(op.token for op in layer.candidates)] for layer in space.layers]
    print(f"{space.name}: {space.resolution}x{space.resolution}, {len(space.searched_layers)} "
          f"searched layers, {space.num_candidate_slots} architecture parameters")
    print(format_table(["layer", "input", "output", "stride", "candidates"], rows, "lllrl"))
    return 0
