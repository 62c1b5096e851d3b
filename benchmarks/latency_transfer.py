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
their earlier entries. ``--refit`` fits stored pairs again on their stored timings (after a change
to the fit; refused where the source table changed since). Takes about 2-3 minutes a pair on a
quiet machine, 4-8 with an OpenVINO or INT8 target (conversions cost more).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np

from proxylessnas.hardware.adapt import adapt
from proxylessnas.hardware.cost import KeyCostModel
from proxylessnas.hardware.lut import LatencyTable
from proxylessnas.hardware.measure import Backend, device_name
from proxylessnas.hardware.targets import table_model
from proxylessnas.hardware.validate import SpeedGauge, accuracy_metrics, measure_shuffled, sample_archs
from proxylessnas.space import get_space
from proxylessnas.space.arch import Arch
from proxylessnas.space.spec import SearchSpace

RESULTS = Path(__file__).resolve().parent / "results"
POOL_SEED, TEST_SEED = 2_000_000, 5
SETTING = re.compile(r"^(?P<name>[a-z0-9-]+?)(?:-t(?P<threads>\d+))?(?:-b(?P<batch>\d+))?$")


def parse_setting(text: str) -> Backend:
    match = SETTING.match(text)
    if match is None:
        raise SystemExit(f"bad setting '{text}': write backend[-t<threads>][-b<batch>]")
    return Backend(match["name"], "cpu", int(match["batch"] or 1), int(match["threads"] or 1))


def fingerprint(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of a table file (its entries and predictor)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_source(source_name: str, args: argparse.Namespace) -> tuple[Path, LatencyTable]:
    source_path = args.tables / f"latency_table_{source_name}.json"
    if not source_path.is_file():
        raise SystemExit(f"no table {source_path}: run benchmarks/latency_accuracy.py for "
                         f"{source_name} first")
    return source_path, LatencyTable.load(source_path)


def run_pair(pair: str, args: argparse.Namespace) -> dict:
    source_name, target_name = pair.split(">")
    source_path, source = load_source(source_name, args)
    space = get_space(source.target.space, **source.target.space_overrides)
    old = table_model(source)
    backend = parse_setting(target_name)
    backend.check_available()
    pool = sample_archs(space, args.pool, seed=POOL_SEED)
    test = sample_archs(space, args.samples, seed=TEST_SEED)
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
              "source_sha256": fingerprint(source_path),
              "target_provenance": {k: backend.provenance()[k]
                                    for k in ("backend_version", "dtype", "device")},
              "samples": args.samples, "pool": args.pool, "measure_seconds": measure_s,
              "load_average_at_end": os.getloadavg(),
              "unadapted": accuracy_metrics(raw, test_y),
              "target_over_source_median": statistics.median(y / r for y, r in zip(test_y, raw)),
              "pool_measured_ms": pool_y, "test_measured_ms": test_y}
    result["shots"] = score_shots(source, old, space, backend, pool, pool_y, test, test_y, args.shots)
    return result


def refit_pair(pair: str, entry: dict, args: argparse.Namespace) -> dict:
    """The shots of a stored entry fitted again (with the current ``adapt``) on its stored timings:
    nothing is measured. The source table must be the one the timings were scored against."""
    source_name, target_name = pair.split(">")
    source_path, source = load_source(source_name, args)
    if entry.get("source_sha256", fingerprint(source_path)) != fingerprint(source_path):
        raise SystemExit(f"{source_path} changed since {pair} was measured: measure the pair again")
    if "source_sha256" not in entry and source.provenance["date"][:16].replace("T", " ") > entry["date"]:
        raise SystemExit(f"{source_path} is newer than {pair}'s timings: measure the pair again")
    space = get_space(source.target.space, **source.target.space_overrides)
    pool = sample_archs(space, entry["pool"], seed=POOL_SEED)
    test = sample_archs(space, entry["samples"], seed=TEST_SEED)
    shots = score_shots(source, table_model(source), space, parse_setting(target_name), pool,
                        entry["pool_measured_ms"], test, entry["test_measured_ms"], args.shots)
    return {**entry, "shots": shots, "source_sha256": fingerprint(source_path),
            "refitted": time.strftime("%Y-%m-%d %H:%M")}


def score_shots(source: LatencyTable, old: KeyCostModel, space: SearchSpace, backend: Backend,
                pool: list[Arch], pool_y: list[float], test: list[Arch], test_y: list[float],
                shots: list[int]) -> dict:
    """For each N in ``shots``: adapt on disjoint draws of N pool nets, score each on the test nets."""
    result = {}
    for n in shots:
        draws = []
        for first in range(0, len(pool) - n + 1, n):  # disjoint draws of n networks from the pool
            table = adapt(source, old, space, pool[first:first + n], pool_y[first:first + n],
                          backend.batch_size, backend.provenance())
            model = table_model(table)
            metrics = accuracy_metrics([model.arch_cost(space, a) for a in test], test_y)
            draws.append({**metrics, "fit": table.predictor["fit"]})
        result[str(n)] = {
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
    parser.add_argument("--refit", action="store_true",
                        help="fit the pairs again on their stored timings (after a change to adapt; "
                             "nothing is measured)")
    args = parser.parse_args()
    out = args.out_dir / "latency_transfer.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.update(device=device_name("cpu"), pairs=results.get("pairs", {}))
    for pair in args.pairs:
        if args.refit:
            if pair not in results["pairs"]:
                raise SystemExit(f"--refit: {pair} has no stored timings in {out}; measure it first")
            entry = refit_pair(pair, results["pairs"][pair], args)
        else:
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
