"""``proxyless search`` and ``proxyless plot RUN_DIR``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from proxylessnas.arguments import non_negative_int, output_folder, positive_float, positive_int
from proxylessnas.data import parse_spec
from proxylessnas.errors import ProxylessError
from proxylessnas.progress import add_option as add_progress_option
from proxylessnas.runtime.distributed import add_launch_arguments, launched_rank, relaunch_if_requested
from proxylessnas.runtime.runfolder_lock import LOCK_NAME, RUN_FILES
from proxylessnas.search.config import (
    BINARY_MODES,
    STRATEGIES,
    SearchConfig,
    SpaceSection,
    config_names,
    load_config,
)

SEARCH_EPILOG = """examples:
  proxyless search                      # the demo: bundled Fashion-MNIST subset, this machine's CPU
  proxyless search --config cifar10 --dataset cifar10:~/data/cifar10 --target-latency 12
  proxyless search --dataset synthetic:500 --space tiny --hardware flops search.epochs=2
  proxyless search --out runs/demo --resume
  proxyless search --config cifar10 --dataset cifar10:DIR --nproc 4   # 4 processes (GPUs) on this machine
  torchrun --nproc-per-node 8 -m proxylessnas search --config imagenet-gpu ...   # see docs/distributed.md
overrides are section.field=value, e.g. arch.lr=3e-4 latency.mode=under data.batch_size=128;
shipped recipes: {names}"""

FLAG_FIELDS = {
    "dataset": "data.dataset", "space": "space.name", "hardware": "hardware.target",
    "target_latency": "latency.target", "strategy": "search.strategy", "binary_mode": "search.binary_mode",
    "epochs": "search.epochs", "warmup_epochs": "search.warmup_epochs", "out": "run.out",
}


def register(subparsers) -> None:
    search = subparsers.add_parser(
        "search", help="search an architecture for your data and hardware",
        description="Run the ProxylessNAS search. With no arguments: the demo recipe on the bundled "
                    "Fashion-MNIST subset for this machine's CPU (latency table measured once, cached).",
        epilog=SEARCH_EPILOG.format(names=", ".join(config_names())),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    search.add_argument("--config", metavar="FILE", help="a YAML recipe or a shipped name (default: demo)")
    search.add_argument("--dataset", metavar="SPEC",
                        help="cifar10:DIR, fashion-mnist[:DIR], mnist:DIR, imagefolder:DIR, demo, "
                             "synthetic[:N]")
    search.add_argument("--space", metavar="NAME", help="search space preset (proxyless-cifar, tiny, ...)")
    search.add_argument("--hardware", metavar="TARGET",
                        help="cpu, cuda, onnxruntime, onnxruntime-int8, openvino, openvino-int8, executorch, "
                             "executorch-int8, flops, params, or a latency table file")
    search.add_argument("--allow-mismatch", action="store_true",
                        help="use a latency table measured with another runtime version, CPU, precision, "
                             "batch size or threads than hardware.* targets (hardware.allow_mismatch=true)")
    search.add_argument("--target-latency", metavar="MS", type=positive_float,
                        help="latency target in the cost model's unit (ms for measured hardware)")
    search.add_argument("--strategy", choices=STRATEGIES)
    search.add_argument("--binary-mode", choices=BINARY_MODES)
    search.add_argument("--epochs", type=positive_int, metavar="N", help="search epochs after the warm-up")
    search.add_argument("--warmup-epochs", type=non_negative_int, metavar="N",
                        help="weights-only warm-up epochs")
    search.add_argument("--out", metavar="DIR", type=output_folder,
                        help="run directory (default from the recipe)")
    search.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add_progress_option(search)
    add_launch_arguments(search)
    search.add_argument("overrides", nargs="*", metavar="key=value", help="section.field=value overrides")
    search.set_defaults(func=search_command)

    plot = subparsers.add_parser(
        "plot", help="redraw the plots of a search run",
        description="Redraw RUN_DIR/plots/ (architecture diagram, probability heatmap, search GIF, curves).",
        epilog="example:\n  proxyless plot runs/demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    plot.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of a search")
    plot.set_defaults(func=plot_command)


def resolve_config(args) -> SearchConfig:
    """Recipe (or, on --resume without --config, the run's own config.yaml), then the flags, then
    the key=value overrides. ``--space`` drops the recipe's options for its own space preset."""
    flags = {field: getattr(args, name) for name, field in FLAG_FIELDS.items()
             if getattr(args, name) is not None}
    if args.no_progress:
        flags["run.progress"] = False
    if args.allow_mismatch:
        flags["hardware.allow_mismatch"] = True
    if args.resume and args.config is None:
        out = Path(args.out if args.out is not None else load_config("demo").run.out)
        saved = out / "config.yaml"
        if not saved.is_file():
            raise ProxylessError("nothing to resume: no config.yaml", str(out),
                                 "give the --out folder of a search, or start one without --resume")
        config = load_config(saved)  # the recipe reader: every malformed or oversized YAML is one line
    else:
        config = load_config(args.config or "demo")
    if "space.name" in flags and flags["space.name"] != config.space.name:
        config = replace(config, space=SpaceSection(name=flags["space.name"]))
    if flags:
        config = config.with_overrides(flags, "command line")
    if args.overrides:
        config = config.with_overrides(list(args.overrides))
    if not args.resume and args.out is None:
        config = config.with_overrides({"run.out": str(fresh_run_dir(Path(config.run.out)))}, "command line")
    output_folder.check(config.run.out, "search config", "run.out")
    parse_spec(config.data.dataset)  # a bad dataset option fails here, before the run folder is made
    return config


def fresh_run_dir(path: Path) -> Path:
    """``path`` unless it holds an earlier run's files or another run's lock; then ``path-2``, ..."""
    candidate, number = path, 1
    while any((candidate / name).exists() for name in (*RUN_FILES, LOCK_NAME)):
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def search_command(args) -> int:
    from proxylessnas.search.finish import format_summary
    from proxylessnas.search.run import SearchInterrupted, run_search

    config = resolve_config(args)  # bad options fail here, once, before any process is started
    launched = relaunch_if_requested(args)
    if launched is not None:
        return launched
    report = launched_rank() == 0  # under torchrun only rank 0 prints
    strategy = config.search.strategy
    if strategy == "gradient":
        mixed = config.search.mixed_op
        strategy += f" ({config.search.binary_mode})" if mixed == "binary" else f" ({mixed})"
    if report:
        print(f"search: {config.data.dataset}, space {config.space.name}, hardware {config.hardware.target}, "
              f"strategy {strategy}, {config.search.warmup_epochs} warm-up + {config.search.epochs} search "
              f"epochs -> {config.run.out}", flush=True)
        note = config.hardware_term_note()
        if note:
            print(f"note: {note}", flush=True)
    try:
        result = run_search(config, resume=args.resume)
    except SearchInterrupted as stop:
        return stop.report("search", config.run.out, show=report)
    if report:
        print(format_summary(result.summary))
    return 0


def plot_command(args) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ProxylessError("run folder not found", str(run_dir), "give the --out folder of a search")
    if not (run_dir / "metrics.jsonl").is_file():
        raise ProxylessError("not a search run (no metrics.jsonl)", str(run_dir),
                             "give the --out folder of a search")
    try:
        from proxylessnas.viz import plot_run
    except ImportError:
        raise ProxylessError("plotting is not available in this install", "proxylessnas.viz",
                             "install the full proxylessnas package") from None
    written = plot_run(run_dir)
    for path in written or []:
        print(path)
    return 0
