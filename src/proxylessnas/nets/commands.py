"""``proxyless zoo list`` and ``proxyless zoo show NAME``."""

from __future__ import annotations

import json

from proxylessnas.arguments import num_classes, resolution
from proxylessnas.nets.profile import profile_net
from proxylessnas.nets.zoo import ZOO, get_entry
from proxylessnas.subcommands import add_command, add_group
from proxylessnas.tables import format_table, human


def register(subparsers) -> None:
    sub = add_group(subparsers, "zoo", "list and inspect the published networks",
                    "The model zoo: the published ProxylessNAS nets and MobileNetV2.",
                    "proxyless zoo show proxyless_cpu --resolution 160")
    add_command(sub, "list", "the zoo's models with params and MACs", "proxyless zoo list",
                "List the zoo's models at their own input size and classes.").set_defaults(func=_list)
    show = add_command(sub, "show", "per-layer table of one model", "proxyless zoo show proxyless_mobile",
                       "Per-layer op, shapes, params and MACs of a zoo model.")
    show.add_argument("name", help=f"one of {', '.join(ZOO)}")
    show.add_argument("--resolution", type=resolution, default=None,
                      help="input side (default: the model's, 224 or 32 for proxyless_cifar)")
    show.add_argument("--num-classes", type=num_classes, default=None,
                      help="classes (default: the model's, 1000 or 10 for proxyless_cifar)")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(func=_show)


def _list(args) -> int:
    rows = []
    for name, entry in ZOO.items():
        layers = profile_net(entry.net_config())
        rows.append([name, f"{entry.default_resolution}", human(sum(r.params for r in layers)),
                     human(sum(r.macs for r in layers)), entry.published.get("top1", "-"), entry.description])
    print(format_table(["name", "input", "params", "MACs", "top-1 (paper)", "description"], rows, "lrrrrl"))
    return 0


def _show(args) -> int:
    entry = get_entry(args.name)
    args.resolution = args.resolution or entry.default_resolution
    args.num_classes = args.num_classes or entry.default_num_classes
    rows = profile_net(entry.net_config(args.num_classes, args.resolution))
    if args.json:
        print(json.dumps({"name": entry.name, "resolution": args.resolution, "layers": [
            {"label": r.label, "op": r.op, "input": str(r.input), "output": str(r.output),
             "params": r.params, "macs": r.macs, "residual": r.residual} for r in rows],
            "params": sum(r.params for r in rows), "macs": sum(r.macs for r in rows)}, indent=2))
        return 0
    table = [[r.label, r.op + (" +res" if r.residual else ""), str(r.input), str(r.output),
              f"{r.params:,}", f"{r.macs / 1e6:.2f}"] for r in rows]
    table.append(["total", "", "", "", f"{sum(r.params for r in rows):,}",
                  f"{sum(r.macs for r in rows) / 1e6:.2f}"])
    print(f"{entry.name}: {entry.description} ({args.resolution}x{args.resolution}, "
          f"{args.num_classes} classes)")
    print(format_table(["layer", "op", "input", "output", "params", "MMACs"], table, "llllrr"))
    return 0
