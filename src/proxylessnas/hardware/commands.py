"""``proxyless latency ...``: build, predict, validate, export-ops, import, measure."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from proxylessnas.arguments import (
    existing_file,
    new_file,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
    resolution,
    seed,
)
from proxylessnas.errors import ProxylessError
from proxylessnas.progress import add_option as add_progress_option
from proxylessnas.subcommands import add_command, add_group

EXAMPLES = {
    "build": "proxyless latency build --space proxyless-cifar --backend torch --threads 1 --out lut.json",
    "predict": "proxyless latency predict proxyless_mobile --hardware mobile_trim.yaml",
    "validate": "proxyless latency validate --hardware cpu --space proxyless-cifar --samples 100 --fit 200 "
                "--json report.json --plot scatter.png",
    "export-ops": "proxyless latency export-ops --space proxyless-cifar --out ops/  # a new or empty folder",
    "import": "proxyless latency import timings.csv --manifest ops/manifest.json --out phone.json",
    "measure": "proxyless latency measure proxyless_cpu --backend openvino --threads 2 --batch-size 8",
    "adapt": "proxyless latency adapt --from lut.json --backend onnxruntime --threads 2 --measure 10 "
             "--validate 100 --out lut_ort_t2.json",
}
RUNTIMES = "onnxruntime | onnxruntime-int8 | openvino | openvino-int8 | executorch | executorch-int8"
RUNTIME_BACKENDS = f"torch | torchscript | {RUNTIMES}"
HARDWARE = f"cpu | cuda | {RUNTIMES}"


def _parser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    return add_command(sub, name, help_text, EXAMPLES[name])


DEFAULT_SPACE = "proxyless-cifar"


def _space_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default=None, help=f"search space name (default: {DEFAULT_SPACE})")
    p.add_argument("--resolution", type=resolution, default=None,
                   help="input resolution (default: the space's)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="space overrides, e.g. width_mult=0.5 'depths=[2,2,2,2,2,1]'")


def _backend_args(p: argparse.ArgumentParser, hardware: bool = False) -> None:
    if not hardware:
        p.add_argument("--backend", default="torch", help=f"{RUNTIME_BACKENDS} (default: torch)")
        p.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    default = "the table's for a table file, else 1" if hardware else "1"
    p.add_argument("--batch-size", type=positive_int, default=None if hardware else 1,
                   help=f"batch size (default: {default})")
    p.add_argument("--threads", type=positive_int, default=None if hardware else 1,
                   help=f"CPU threads (default: {default})")
    p.add_argument("--clock", default="auto",
                   help="auto | thread | wall: auto uses the thread's CPU time with one CPU thread")
    if hardware:
        p.add_argument("--allow-mismatch", action="store_true",
                       help="use a table measured with another runtime version, CPU, precision, batch size "
                            "or threads than the ones targeted (a warning instead of an error)")


def register(subparsers) -> None:
    sub = add_group(subparsers, "latency", "hardware cost: latency tables, predictor, validation",
                    "Measure, predict and validate network latency.", EXAMPLES["build"], metavar="ACTION")

    p = _parser(sub, "build", "time every unique block of a space and save a latency table")
    _space_args(p)
    _backend_args(p)
    p.add_argument("--out", default=None, type=new_file,
                   help="table path (default: the cache used by --hardware)")
    p.add_argument("--seconds-per-key", type=positive_float, default=1.0, help="timing budget per block")
    p.add_argument("--overwrite", action="store_true", help="replace an existing table for another target")
    add_progress_option(p)
    p.set_defaults(func=cmd_build)

    p = _parser(sub, "predict", "predicted latency (or MACs) of one architecture")
    p.add_argument("arch", metavar="ARCH_JSON|ZOO_NAME|NB201_STRING")
    p.add_argument("--hardware", required=True, help=f"{HARDWARE} | flops | params | TABLE")
    _backend_args(p, hardware=True)
    p.add_argument("--per-layer", action="store_true", help="print the cost of every block")
    p.add_argument("--json", default=None, type=new_file, help="write the prediction to this JSON file")
    add_progress_option(p)  # a measured target builds its table on first use
    p.set_defaults(func=cmd_predict)

    p = _parser(sub, "validate", "measure random architectures end to end and compare with predictions")
    p.add_argument("--hardware", required=True, help=f"{HARDWARE} | TABLE (a JSON table)")
    _space_args(p)
    _backend_args(p, hardware=True)
    p.add_argument("--samples", type=positive_int, default=100,
                   help="architectures to validate on (at least 2; default: 100)")
    p.add_argument("--fit", type=non_negative_int, default=0,
                   help="first fit the predictor on this many other architectures and save it in the table")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--gauge", type=non_negative_int, default=3,
                   help="reference nets timed in every chunk to remove the machine's speed changes "
                        "between chunks (default: 3; 0: raw timings)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="processes that convert each chunk's nets side by side before it is timed "
                        "(onnxruntime and executorch backends; default: 1)")
    p.add_argument("--json", default=None, type=new_file, help="write the report here")
    p.add_argument("--plot", default=None, type=new_file,
                   help="write a predicted-vs-measured scatter plot here")
    add_progress_option(p)
    p.set_defaults(func=cmd_validate)

    p = _parser(sub, "export-ops", "write each unique block as ONNX plus a manifest, to time on a device")
    _space_args(p)
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--out", required=True, type=output_folder, help="output directory")
    p.set_defaults(func=cmd_export_ops)

    p = _parser(sub, "import", "turn device timings (CSV/JSON) or the reference YAML into a table")
    p.add_argument("measurements", metavar="CSV|JSON|YAML", type=existing_file)
    p.add_argument("--manifest", default=None, type=existing_file,
                   help="manifest.json from export-ops (CSV/JSON input)")
    p.add_argument("--device-name", default="unknown device", help="recorded in the provenance")
    p.add_argument("--out", required=True, type=new_file, help="table path")
    p.add_argument("--overwrite", action="store_true", help="replace an existing table file")
    p.set_defaults(func=cmd_import)

    p = _parser(sub, "adapt", "fit a table for a new setting from a few networks measured in it")
    p.add_argument("--from", dest="source", required=True, type=existing_file, metavar="TABLE",
                   help="the table (with its predictor, if fitted) of the setting to transfer from")
    _backend_args(p)
    p.add_argument("--measure", type=positive_int, default=10,
                   help="networks to measure in the new setting (default: 10)")
    p.add_argument("--measured", default=None, type=existing_file, metavar="JSON",
                   help="use these networks measured elsewhere instead (rows of {choices, measured}, e.g. "
                        "the report of 'latency validate --json' run on the device)")
    p.add_argument("--device-name", default=None,
                   help="the device of --measured, recorded in the provenance")
    p.add_argument("--validate", type=non_negative_int, default=0,
                   help="then measure this many other networks and report the adapted table's accuracy")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", required=True, type=new_file, help="adapted table path")
    p.add_argument("--json", default=None, type=new_file, help="write the fit and validation report here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_progress_option(p)
    p.set_defaults(func=cmd_adapt)

    p = _parser(sub, "measure", "measure one network end to end")
    p.add_argument("model", metavar="MODEL_OR_ARCH",
                   help="zoo name, arch JSON, net config JSON or NAS-Bench-201 string")
    p.add_argument("--backend", default="torch", help=f"{RUNTIME_BACKENDS} | cuda")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--clock", default="auto")
    p.add_argument("--rounds", type=positive_int, default=10)
    p.add_argument("--repeats", type=positive_int, default=5, help="timed runs per round")
    p.add_argument("--json", default=None, type=new_file)
    p.set_defaults(func=cmd_measure)


def _space(args: argparse.Namespace, default: str = DEFAULT_SPACE, base: dict[str, Any] | None = None):
    """The space of ``--space`` (or ``default``), ``--resolution`` and the key=value overrides
    (on top of the overrides ``base``)."""
    from proxylessnas.overrides import parse_overrides
    from proxylessnas.space import get_space

    overrides = {**(base or {}), **parse_overrides(args.overrides or [], example="width_mult=0.5")}
    if args.resolution is not None:
        overrides["resolution"] = args.resolution
    return get_space(args.space or default, **overrides)


def _write_json(path: str, data: Any) -> None:
    from proxylessnas.runtime.atomic import write_json_atomic

    write_json_atomic(path, data)


def cmd_build(args: argparse.Namespace) -> int:
    from proxylessnas.hardware.build import build_lut
    from proxylessnas.hardware.measure import Backend
    from proxylessnas.hardware.targets import cached_table_path

    space = _space(args)
    backend = Backend(args.backend, args.device, args.batch_size, args.threads, args.clock)
    out = Path(args.out) if args.out else cached_table_path(space, backend)
    table = build_lut(space, backend, out, seconds_per_key=args.seconds_per_key,
                      progress=not args.no_progress, overwrite=args.overwrite)
    print(f"{len(table.entries)} blocks measured on {table.provenance['device']} "
          f"({backend.label}, batch {backend.batch_size}): {out}")
    return 0


def _load_arch(text: str):
    """(space, arch) from a zoo name, an arch JSON file or a NAS-Bench-201 string."""
    from proxylessnas.nets.zoo import ZOO
    from proxylessnas.space.arch import load_arch_or_string
    from proxylessnas.space.nasbench201 import is_arch_string

    if text in ZOO:
        entry = ZOO[text]
        return entry.space(), entry.arch()
    if not is_arch_string(text) and not Path(text).exists():
        raise ProxylessError(f"'{text}' is neither a zoo model, a file nor a NAS-Bench-201 string", "arch",
                             f"give an arch JSON, a string such as '|nor_conv_3x3~0|+|...|' or one of "
                             f"{', '.join(ZOO)}")
    arch = load_arch_or_string(text)
    return arch.resolve_space(), arch


def cmd_predict(args: argparse.Namespace) -> int:
    from proxylessnas.hardware.keys import arch_keys
    from proxylessnas.hardware.targets import get_cost_model

    refuse_existing(args.json, True, "--json", [args.arch, args.hardware])

    space, arch = _load_arch(args.arch)
    model = get_cost_model(args.hardware, space, batch_size=args.batch_size, threads=args.threads,
                           progress=not args.no_progress, require_all_keys=False,
                           allow_mismatch=args.allow_mismatch)
    total = model.arch_cost(space, arch)
    result: dict[str, Any] = {"arch": args.arch, "hardware": args.hardware, "unit": model.unit,
                              "cost": total, "model": type(model).__name__}
    table = getattr(model, "table", None)
    if table is not None and hasattr(model, "predictor"):
        from proxylessnas.hardware.cost import TableCostModel

        result["table_sum"] = TableCostModel(table).arch_cost(space, arch)  # the setting is checked above
    keys = arch_keys(space, arch)
    if args.per_layer:
        for key in keys:
            print(f"{model.cost(key):10.4f} {model.unit}  {key}")
    extra = f" (table sum {result['table_sum']:.4f})" if "table_sum" in result else ""
    print(f"{args.arch}: {total:.4f} {model.unit} on {args.hardware}{extra}")
    if args.json:
        result["layers"] = [{"key": str(k), "cost": model.cost(k)} for k in keys]
        _write_json(args.json, result)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from proxylessnas.hardware.targets import MEASURED_TARGETS, backend_for, cached_table_path, get_table
    from proxylessnas.hardware.validate import (
        ProgramPool,
        SpeedGauge,
        backend_of_table,
        fit_and_validate,
        plot_scatter,
        table_models,
        validate_models,
    )
    from proxylessnas.space import get_space

    for flag in ("--json", "--plot"):
        refuse_existing(getattr(args, flag[2:]), True, flag, [args.hardware])
    if args.samples < 2:
        raise ProxylessError("--samples must be at least 2", "validate", "give --samples N with N >= 2")
    if args.hardware in MEASURED_TARGETS:
        space = _space(args)
        backend = backend_for(args.hardware, args.batch_size, args.threads)
        backend = type(backend)(backend.name, backend.device, backend.batch_size, backend.threads, args.clock)
        table = get_table(args.hardware, space, batch_size=args.batch_size, threads=args.threads,
                          progress=not args.no_progress, allow_mismatch=args.allow_mismatch)
        table_path = cached_table_path(space, backend)
    else:
        from proxylessnas.hardware.targets import load_table, table_file

        table_path = table_file(args.hardware)
        table = load_table(table_path)
        if table.target.space is None:
            raise ProxylessError("table names no space", str(table_path), "validate a table built here")
        space = get_space(table.target.space, **table.target.space_overrides)
        table.check_target(space)
        asked = args.space is not None or args.resolution is not None or args.overrides
        base = table.target.space_overrides if args.space in (None, space.name) else {}
        if asked and _space(args, space.name, base) != space:
            raise ProxylessError(f"--space, --resolution and the overrides ask for another space than the "
                                 f"table's ({table.target.describe()})", str(table_path),
                                 "leave them out (a table fixes the space), or build a table for that space")
        backend = backend_of_table(table, args.batch_size, args.threads, args.allow_mismatch)
    gauge = SpeedGauge.for_space(space, args.gauge) if args.gauge else None
    with ProgramPool(args.workers) if args.workers > 1 else contextlib.nullcontext() as pool:
        if args.fit:
            report, rows = fit_and_validate(space, table, backend, args.fit, args.samples, seed=args.seed,
                                            fit_seed=args.seed + 1_000_000, gauge=gauge, pool=pool,
                                            progress=not args.no_progress)
            table.save(table_path)
            print(f"predictor fitted on {args.fit} architectures (measured in one session with the "
                  f"{args.samples} validation ones), saved in {table_path}")
        else:
            report, rows = validate_models(space, table_models(table), backend, args.samples, seed=args.seed,
                                           gauge=gauge, pool=pool, progress=not args.no_progress)
    report["provenance"] = {**table.provenance, "table": str(table_path), "space": space.name,
                            "resolution": space.resolution, "validation_backend": backend.label}
    for name in ("lut", "predictor"):
        if name in report:
            m = report[name]
            print(f"{name:9s} MAPE {m['mape']:.2f}%  within 5% {m['within_5']:.0%}  "
                  f"within 10% {m['within_10']:.0%}  RMSE {m['rmse']:.3f} ms  tau {m['kendall_tau']:.3f}")
    if gauge is not None:
        g = report["speed_gauge"]
        print(f"speed gauge: {g['nets']} reference nets in each of {g['chunks']} chunks; chunk speed "
              f"factors {g['factor_min']:.3f}-{g['factor_max']:.3f} (divided out)")
    if "predictor" not in report:
        print("no predictor in the table: pass --fit N to fit one")
    if args.json:
        _write_json(args.json, {**report, "rows": rows})
    if args.plot:
        plot_scatter(rows, [n for n in ("lut", "predictor") if n in report], args.plot,
                     f"{space.name} on {backend.label}, n={args.samples}")
    return 0


def cmd_export_ops(args: argparse.Namespace) -> int:
    from proxylessnas.hardware.exchange import export_ops

    manifest = export_ops(_space(args), args.out, args.batch_size)
    print(f"wrote {manifest}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.measurements)
    refuse_existing(args.out, args.overwrite, "--out", sources=[path])
    if path.suffix.lower() in (".yaml", ".yml"):
        from proxylessnas.hardware.legacy import import_legacy_yaml

        table = import_legacy_yaml(path)
    else:
        if not args.manifest:
            raise ProxylessError("CSV/JSON measurements need the manifest they were measured from",
                                 str(path), "pass --manifest DIR/manifest.json from export-ops")
        from proxylessnas.hardware.exchange import import_measurements

        table = import_measurements(path, args.manifest, {"device": args.device_name})
    table.save(args.out)
    print(f"{len(table.entries)} entries for {table.target.describe()}: {args.out}")
    return 0


def _measured_rows(path: str, space) -> tuple[list, list[float]]:
    """(archs, measured ms) from rows of {"choices": {label: op}, "measured": ms}, alone or as the
    ``rows`` of a validation report."""
    from proxylessnas.space.arch import ARCH_SCHEMA_VERSION, Arch, read_json

    data = read_json(path, "measured networks")
    rows = data.get("rows") if isinstance(data, dict) else data
    fix = 'give a list of {"choices": {...}, "measured": ms}, e.g. a \'latency validate --json\' report'
    if not isinstance(rows, list) or not rows:
        raise ProxylessError("no measured networks in the file", path, fix)
    archs, measured = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "choices" not in row or "measured" not in row:
            raise ProxylessError(f"row {i} has no choices and measured latency", path, fix)
        arch = Arch.from_dict({"schema_version": ARCH_SCHEMA_VERSION, "space": space.name,
                               "space_overrides": dict(space.overrides), "choices": row["choices"]},
                              f"{path}: row {i}")
        arch.validate(space, f"{path}: row {i}")
        value = row["measured"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ProxylessError(f"row {i}: measured latency {value!r} is not a positive number of ms",
                                 path, fix)
        archs.append(arch)
        measured.append(float(value))
    return archs, measured


def refuse_existing(out: str | Path | None, overwrite: bool, flag: str, sources: list[str | Path]) -> None:
    """Refuse an output path that is one of the command's own inputs (always), or an existing file
    (unless ``overwrite``; reports pass True: they may be replaced): checked before anything is
    measured or written."""
    if out is None:
        return
    target = Path(out)
    if any(Path(source).exists() and target.exists() and target.samefile(source) for source in sources):
        raise ProxylessError(f"{flag} is one of this command's inputs", str(out),
                             f"give {flag} another path; the input would be replaced by the result")
    if target.exists() and not overwrite:
        raise ProxylessError("the table file exists", str(out),
                             f"choose another {flag}, or pass --overwrite to replace it")


def cmd_adapt(args: argparse.Namespace) -> int:
    from proxylessnas.hardware.adapt import adapt
    from proxylessnas.hardware.keys import space_keys
    from proxylessnas.hardware.measure import Backend
    from proxylessnas.hardware.targets import load_table, table_model
    from proxylessnas.hardware.validate import SpeedGauge, measure_shuffled, sample_archs, score_models
    from proxylessnas.space import get_space

    inputs = [args.source, *([args.measured] if args.measured else [])]
    refuse_existing(args.out, args.overwrite, "--out", inputs)
    refuse_existing(args.json, True, "--json", [*inputs, args.out])  # a report may be replaced
    source = load_table(args.source)
    if source.target.space is None:
        raise ProxylessError("table names no space", args.source, "adapt a table built for a space")
    space = get_space(source.target.space, **source.target.space_overrides)
    source.check_target(space)
    old = table_model(source)
    old.require(space_keys(space).unique())
    if args.measured:
        if args.validate:
            raise ProxylessError("--validate measures here, --measured comes from elsewhere", "--validate",
                                 "validate the adapted table on the device "
                                 "('latency validate --hardware TABLE')")
        archs, measured = _measured_rows(args.measured, space)
        provenance = {"device": args.device_name or "unknown device", "backend": "remote",
                      "batch_size": args.batch_size, "threads": args.threads}
    else:
        backend = Backend(args.backend, args.device, args.batch_size, args.threads, args.clock)
        backend.check_available()
        archs = sample_archs(space, args.measure, args.seed + 2_000_000)
        test = sample_archs(space, args.validate, args.seed)
        gauge = SpeedGauge.for_space(space) if len(archs) + len(test) > 16 else None
        stats = measure_shuffled(space, archs + test, backend, seed=args.seed, shuffle_seed=args.seed + 1,
                                 gauge=gauge, progress=not args.no_progress)  # one session: no drift between
        measured = [s.median for s in stats[:len(archs)]]
        provenance = backend.provenance()
    provenance["adapted_from"] = {"table": str(args.source), **{k: source.provenance.get(k) for k in (
        "device", "backend", "backend_version", "dtype", "threads")},
        "batch_size": source.target.batch_size}
    table = adapt(source, old, space, archs, measured, args.batch_size, provenance)
    table.save(args.out)
    fit = table.predictor["fit"]
    loo = fit["leave_one_out_mape"]
    loo_text = "" if loo is None else f", leave-one-out MAPE {loo:.2f}%"
    print(f"adapted from {len(archs)} measured networks (fit MAPE {fit['train_mape']:.2f}%{loo_text}): "
          f"{args.out}\n  new = {fit['alpha']:.4f} x old {fit['beta_per_mmac']:+.5f} ms/MMAC "
          f"{fit['kappa_per_depthwise_mmac']:+.5f} ms/depthwise MMAC "
          f"{fit['mu_per_unaligned_depthwise_mmac']:+.5f} ms/depthwise MMAC over channels not a multiple "
          f"of {fit['lanes']} {fit['delta_per_layer']:+.5f} ms/layer {fit['gamma']:+.4f} ms")
    report: dict = {"fit": fit, "measured": [{"choices": a.to_dict()["choices"], "measured": m}
                                             for a, m in zip(archs, measured)]}
    if args.validate:
        models = {"source": old, "adapted": table_model(table)}
        scores, rows = score_models(space, models, test, stats[len(archs):], args.seed)
        report.update(validation=scores, rows=rows)
        for name in ("source", "adapted"):
            m = scores[name]
            print(f"{name:8s} on {args.validate} unseen networks: MAPE {m['mape']:.2f}%  within 5% "
                  f"{m['within_5']:.0%}  within 10% {m['within_10']:.0%}  tau {m['kendall_tau']:.3f}")
    if args.json:
        _write_json(args.json, report)
    return 0


def _load_module(text: str):
    """(module, input shape without batch) from a zoo name, an arch JSON, a net config JSON (chain
    or graph) or a NAS-Bench-201 string."""
    from proxylessnas.nets import build_net, net_from_config
    from proxylessnas.nets.config import NET_KIND
    from proxylessnas.nets.graph_net import GRAPH_NET_KIND
    from proxylessnas.space.arch import read_json
    from proxylessnas.space.nasbench201 import is_arch_string

    path = Path(text)
    if not is_arch_string(text) and path.is_file():
        data = read_json(path, "model file")
        if isinstance(data, dict) and data.get("kind") in (NET_KIND, GRAPH_NET_KIND):
            net = net_from_config(data, str(path))
            cfg = net.net_config
            return net, (cfg.in_chs, cfg.resolution, cfg.resolution)
    space, arch = _load_arch(text)
    return build_net(space, arch), (space.in_chs, space.resolution, space.resolution)


def cmd_measure(args: argparse.Namespace) -> int:
    from proxylessnas.hardware.measure import BACKENDS, Backend, measure_interleaved, prepare_runner

    refuse_existing(args.json, True, "--json", [args.model])

    names = {**{name: (name, "cpu") for name in BACKENDS}, "cuda": ("torch", "cuda")}
    if args.backend not in names:
        raise ProxylessError(f"unknown backend '{args.backend}'", "--backend",
                             f"use one of {', '.join(names)}")
    name, device = names[args.backend]
    backend = Backend(name, device, args.batch_size, args.threads, args.clock)
    module, shape = _load_module(args.model)
    runner = prepare_runner(module, (args.batch_size, *shape), backend)
    stats = measure_interleaved([runner], rounds=args.rounds, per_round=args.repeats, threads=args.threads)[0]
    print(f"{args.model}: median {stats.median:.3f} ms (p10 {stats.p10:.3f}, p90 {stats.p90:.3f}, "
          f"n={stats.count}) on {backend.label} ({backend.resolved_clock} clock), batch {args.batch_size}")
    if args.json:
        _write_json(args.json, {"model": args.model, **stats.to_dict(), "unit": "ms",
                                "provenance": backend.provenance()})
    return 0
