"""Latency accuracy on this machine: table sum and learned predictor versus end-to-end timings.

For each backend (torch eager CPU, ONNX Runtime CPU, or any of the optional runtimes of
``hardware/runtimes.py``; batch 1 and one thread unless ``--batch-size`` / ``--threads``; the
CIFAR-size space):
build a fresh table, fit the predictor on ``--fit`` random architectures and score it on
``--samples`` other random architectures (a different seed: never fitted on): MAPE, share within
+-5 / +-10 %, RMSE and Kendall tau for the table sum and the predictor. Fitting and validation
networks are measured in one session in a shuffled order (``fit_and_validate``), so a drift of the
machine's speed between two sessions does not masquerade as predictor error; that drift is
reported separately as the noise below. A speed gauge (``--gauge`` reference networks timed in
every chunk of 16) divides out the machine's faster speed changes between chunks, and keeps the
second pass and the sessions below on the first pass's scale.
Measurement noise: the same test networks measured a second time (another interleaving order),
scored like a predictor against the first pass; and one network measured in ``--noise-repeats``
separate sessions (spread of its medians). With ``--keep-programs`` every converted net is kept
and timed again as it is in the second pass and the sessions (:class:`RunnerCache`): on ExecuTorch
that saves ~110 lowerings of ~10 s, and the noise then leaves out compile-to-compile variance.
``--workers 2`` converts each chunk's nets in two processes before the chunk is timed (ONNX
Runtime and ExecuTorch), which halves an ExecuTorch run on two cores.

    python benchmarks/latency_accuracy.py [--samples 100] [--fit 150] [--backends torch onnxruntime]
        [--threads 1] [--batch-size 1]

Writes latency_accuracy.json, latency_table_<entry>.json and latency_scatter_<entry>.png to
``--out-dir`` (default benchmarks/results). On a quiet machine the default run takes about 15
minutes; a busy machine inflates the noise and with it every error figure. The entry of a
backend is its name at batch 1 and one thread, else ``<name>-t<threads>-b<batch>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from proxylessnas.hardware.build import build_lut
from proxylessnas.hardware.lut import LatencyTable
from proxylessnas.hardware.measure import Backend, device_name
from proxylessnas.hardware.validate import (
    ProgramPool,
    RunnerCache,
    SpeedGauge,
    accuracy_metrics,
    fit_and_validate,
    measure_networks,
    plot_scatter,
    sample_archs,
)
from proxylessnas.space import get_space

RESULTS = Path(__file__).resolve().parent / "results"


def entry_name(name: str, args: argparse.Namespace) -> str:
    """The backend's name at batch 1 and one thread, else ``<name>-t<threads>-b<batch>``."""
    return name if (args.threads, args.batch_size) == (1, 1) else f"{name}-t{args.threads}-b{args.batch_size}"


def run_backend(name: str, args: argparse.Namespace) -> dict:
    space = get_space(args.space)
    backend = Backend(name, "cpu", args.batch_size, args.threads)
    entry = entry_name(name, args)
    table_path = args.out_dir / f"latency_table_{entry}.json"
    start = time.perf_counter()
    if args.reuse_table and table_path.exists():
        table = LatencyTable.load(table_path)
    else:
        table = build_lut(space, backend, table_path, overwrite=True, progress=False,
                          seconds_per_key=args.seconds_per_key)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    gauge = SpeedGauge.for_space(space, args.gauge) if args.gauge else None
    cache = RunnerCache() if args.keep_programs else None
    pool = ProgramPool(args.workers) if args.workers > 1 else None
    timing = {"gauge": gauge, "rounds": args.rounds, "seconds_per_net": args.seconds_per_net,
              "cache": cache, "pool": pool}
    report, rows = fit_and_validate(space, table, backend, args.fit, args.samples, seed=0, fit_seed=1000,
                                    **timing)
    table.save(table_path)
    fit_validate_s = time.perf_counter() - start
    # noise 1: a second pass over the same test networks, scored against the first
    second = measure_networks(space, sample_archs(space, args.samples, 0), backend, seed=77, **timing)
    repeat = accuracy_metrics([s.median for s in second], [r["measured"] for r in rows])
    # noise 2: one network, separate sessions
    arch = sample_archs(space, 1, 12345)
    sessions = [measure_networks(space, arch, backend, seed=i, **timing)[0].median
                for i in range(args.noise_repeats)]
    if pool is not None:
        pool.close()
    spread = statistics.pstdev(sessions) / statistics.mean(sessions)
    plot_scatter(rows, ["lut", "predictor"], args.out_dir / f"latency_scatter_{entry}.png",
                 f"{space.name}, {backend.label}, n={args.samples} held-out archs")
    return {"backend": backend.label, "clock": backend.resolved_clock, "keys": len(table.entries),
            "batch_size": backend.batch_size, "threads": backend.threads,
            **{field: table.provenance.get(field) for field in ("dtype", "backend_version")},
            "build_seconds": build_s, "fit_and_validate_seconds": fit_validate_s,
            "fit_n": args.fit, "rounds": args.rounds, "seconds_per_net": args.seconds_per_net,
            "programs_kept": args.keep_programs, "conversion_workers": args.workers,
            "load_average_at_end": os.getloadavg(), "predictor_fit": table.predictor["fit"], **report,
            "speed_gauge_all_passes": gauge.summary() if gauge is not None else None,
            "noise": {"second_pass_vs_first": repeat,
                      "same_net_sessions_ms": sessions, "same_net_cv": spread},
            "measured_ms": {"min": min(r["measured"] for r in rows), "max": max(r["measured"] for r in rows),
                            "median": statistics.median(r["measured"] for r in rows)},
            "rows": [{"measured": r["measured"], "lut": r["lut"], "predictor": r["predictor"],
                      "second_pass": s.median} for r, s in zip(rows, second)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="proxyless-cifar")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--fit", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20,
                        help="interleaved rounds per network (3 timings each)")
    parser.add_argument("--seconds-per-net", type=float, default=0.6, help="timing budget per network")
    parser.add_argument("--noise-repeats", type=int, default=10)
    parser.add_argument("--gauge", type=int, default=3,
                        help="speed-gauge networks timed in every chunk (0: raw timings)")
    parser.add_argument("--seconds-per-key", type=float, default=1.0)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 uses the thread CPU clock)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=RESULTS,
                        help="results folder (default: benchmarks/results)")
    parser.add_argument("--keep-programs", action="store_true",
                        help="time the second pass and the sessions on the programs converted first")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes that convert nets side by side before each chunk is timed "
                             "(ONNX Runtime and ExecuTorch; 2 halves an ExecuTorch run on two cores)")
    parser.add_argument("--reuse-table", action="store_true", help="keep an existing table (skip the build)")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "latency_accuracy.json"
    previous = json.loads(out.read_text()) if out.is_file() else {}
    # Backends not run now keep their earlier results (each entry carries its own date).
    # each entry names its own batch size and threads: the file holds several settings
    results = {"device": device_name("cpu"), "space": args.space,
               "date": time.strftime("%Y-%m-%d %H:%M"), "backends": previous.get("backends", {})}
    for backend in args.backends:
        name = entry_name(backend, args)
        results["backends"][name] = {**run_backend(backend, args), "date": time.strftime("%Y-%m-%d %H:%M")}
        r = results["backends"][name]
        for model in ("lut", "predictor"):
            m = r[model]
            print(f"{name:12s} {model:9s} MAPE {m['mape']:5.2f}%  within5 {m['within_5']:.0%}  "
                  f"within10 {m['within_10']:.0%}  tau {m['kendall_tau']:.3f}")
        n = r["noise"]["second_pass_vs_first"]
        print(f"{name:12s} noise     MAPE {n['mape']:5.2f}%  within5 {n['within_5']:.0%}  "
              f"same-net CV {r['noise']['same_net_cv']:.2%}  build {r['build_seconds']:.0f}s")
        out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
