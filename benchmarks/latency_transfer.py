"""Few-shot transfer accuracy: a table of one setting adapted to another from N measured networks.

For each ``SOURCE>TARGET`` pair (a setting is ``backend[-t<threads>][-b<batch>]``, e.g.
``torch>onnxruntime``, ``torch>torch-t2``, ``onnxruntime>onnxruntime-int8``), the source is the
table (with its predictor) written by ``benchmarks/latency_accuracy.py`` for that setting. In the
target setting a pool of ``--pool`` networks and ``--samples`` unseen test networks are measured
in one session in a shuffled order (a speed gauge divides out the machine's speed changes). Then
``proxyless latency adapt``'s fit (``hardware/adapt.py``) runs on disjoint draws of N networks from
the pool (N in ``--shots``) and each adapted table is scored on the test networks: MAPE, share
within +-5 / +-10 %, Kendall tau; reported per draw and as mean and worst over the draws. The
source table unadapted (a pure rescaling is the first thing adapting fixes) is scored too.

    python benchmarks/latency_transfer.py [--pairs torch>onnxruntime torch>torch-t2 ...]
        [--samples 100] [--pool 20] [--shots 5 10]

Writes latency_transfer.json to ``--out-dir`` (default benchmarks/results); pairs not run keep
their earlier entries. Takes about 2-3 minutes a pair on a quiet machine, 4-8 with an OpenVINO
or INT8 target (conversions cost more).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np

from proxylessnas.hardware.adapt import adapt
from proxylessnas.hardware.lut import LatencyTable
from proxylessnas.hardware.measure import Backend, device_name
from proxylessnas.hardware.targets import table_model
from proxylessnas.hardware.validate import SpeedGauge, accuracy_metrics, measure_shuffled, sample_archs
from proxylessnas.space import get_space

RESULTS = Path(__file__).resolve().parent / "results"
SETTING = re.compile(r"^(?P<name>[a-z0-9-]+?)(?:-t(?P<threads>\d+))?(?:-b(?P<batch>\d+))?$")


def parse_setting(text: str) -> Backend:
    match = SETTING.match(text)
    if match is None:
        raise SystemExit(f"bad setting '{text}': write backend[-t<threads>][-b<batch>]")
    return Backend(match["name"], "cpu", int(match["batch"] or 1), int(match["threads"] or 1))


def run_pair(pair: str, args: argparse.Namespace) -> dict:
    source_name, target_name = pair.split(">")
    source_path = args.tables / f"latency_table_{source_name}.json"
    if not source_path.is_file():
        raise SystemExit(f"no table {source_path}: run benchmarks/latency_accuracy.py for "
                         f"{source_name} first")
    source = LatencyTable.load(source_path)
    space = get_space(source.target.space, **source.target.space_overrides)
    old = table_model(source)
    backend = parse_setting(target_name)
    backend.check_available()
    pool = sample_archs(space, args.pool, seed=2_000_000)
    test = sample_archs(space, args.samples, seed=5)
    start = time.perf_counter()
    stats = measure_shuffled(space, pool + test, backend, seed=1, shuffle_seed=2,
                             gauge=SpeedGauge.for_space(space), seconds_per_net=args.seconds_per_net)
    measure_s = time.perf_counter() - start
    measured = [s.median for s in stats]
    pool_y, test_y = measured[:args.pool], measured[args.pool:]
    raw = [old.arch_cost(space, a) for a in test]
    result = {"source": source_name, "target": target_name, "backend": backend.label,
              "batch_size": backend.batch_size,
              "source_backend_version": source.provenance.get("backend_version"),
              "target_provenance": {k: backend.provenance()[k]
                                    for k in ("backend_version", "dtype", "device")},
              "samples": args.samples, "pool": args.pool, "measure_seconds": measure_s,
              "load_average_at_end": os.getloadavg(),
              "unadapted": accuracy_metrics(raw, test_y),
              "target_over_source_median": statistics.median(y / r for y, r in zip(test_y, raw)),
              "shots": {},
              "pool_measured_ms": pool_y, "test_measured_ms": test_y}
    for n in args.shots:
        draws = []
        for first in range(0, args.pool - n + 1, n):  # disjoint draws of n networks from the pool
            table = adapt(source, old, space, pool[first:first + n], pool_y[first:first + n],
                          backend.batch_size, backend.provenance())
            model = table_model(table)
            metrics = accuracy_metrics([model.arch_cost(space, a) for a in test], test_y)
            draws.append({**metrics, "fit": table.predictor["fit"]})
        result["shots"][str(n)] = {
            "draws": draws,
            "mean": {k: float(np.mean([d[k] for d in draws])) for k in ("mape", "within_5", "within_10",
                                                                         "kendall_tau")},
            "worst_mape": max(d["mape"] for d in draws)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["torch>onnxruntime", "torch>torch-t2",
                                                       "torch>torch-b8", "onnxruntime>onnxruntime-int8"])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--seconds-per-net", type=float, default=0.6)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--tables", type=Path, default=RESULTS, help="where the source tables are")
    args = parser.parse_args()
    out = args.out_dir / "latency_transfer.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.update(device=device_name("cpu"), pairs=results.get("pairs", {}))
    for pair in args.pairs:
        entry = {**run_pair(pair, args), "date": time.strftime("%Y-%m-%d %H:%M")}
        results["pairs"][pair] = entry
        u = entry["unadapted"]
        print(f"{pair:30s} unadapted MAPE {u['mape']:6.2f}%  tau {u['kendall_tau']:.3f}")
        for n, shot in entry["shots"].items():
            m = shot["mean"]
            print(f"{pair:30s} N={n:>2s} MAPE {m['mape']:5.2f}% (worst {shot['worst_mape']:.2f}%)  "
                  f"within5 {m['within_5']:.0%}  within10 {m['within_10']:.0%}  tau {m['kendall_tau']:.3f}")
        out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
