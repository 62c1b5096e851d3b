"""``proxyless space list`` and ``proxyless space show NAME``."""

from __future__ import annotations

from proxylessnas.cli import add_command, add_group
from proxylessnas.space.presets import get_space, space_names
from proxylessnas.space.shapes import shapes_by_label
from proxylessnas.tables import format_table


def register(subparsers) -> None:
    sub = add_group(subparsers, "space", "list and inspect search spaces",
                    "Search-space presets: the paper's ImageNet space, a CIFAR-size space, tiny.",
                    "proxyless space show proxyless-cifar")
    add_command(sub, "list", "the preset spaces", "proxyless space list").set_defaults(func=_list)
    show = add_command(sub, "show", "layers, shapes and candidates of a space",
                       "proxyless space show proxyless-imagenet --resolution 160")
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
