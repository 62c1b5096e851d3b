"""Which zoo net is fastest where: the paper's three searched nets and MobileNetV2 on each runtime.

The ImageNet zoo nets at 224x224 (``proxyless_mobile``, ``proxyless_cpu``, ``proxyless_gpu``,
``mobilenet_v2``) are converted once per runtime (batch 1 and one thread unless ``--batch-size`` /
``--threads``) and timed interleaved in ``--sessions`` sessions (shuffled round-robin, about
``--seconds-per-net`` of timing a net a session). Reported per runtime: each net's latency (the
median of its session medians) with the sessions' range, its rank (1 = fastest) and the fastest
net; across runtimes, Kendall tau between every two runtimes' orders of the nets. Runtimes that are
not installed are skipped with the reason.

    python benchmarks/zoo_runtimes.py [--backends torch onnxruntime openvino ...] [--sessions 3]

Writes zoo_runtimes.json to ``--out-dir`` (default benchmarks/results); entries of runtimes not
run keep their earlier values. A few minutes a runtime on a quiet machine (ExecuTorch lowers and
the INT8 runtimes quantise each net first).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

from proxylessnas import zoo
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.measure import Backend, device_name, measure_interleaved, prepare_runner
from proxylessnas.hardware.runtimes import RUNTIMES
from proxylessnas.hardware.validate import kendall_tau, repeats_per_round

RESULTS = Path(__file__).resolve().parent / "results"
NETS = ("proxyless_mobile", "proxyless_cpu", "proxyless_gpu", "mobilenet_v2")


def time_runtime(name: str, args: argparse.Namespace) -> dict:
    """Convert the zoo nets for runtime ``name`` and time them in ``args.sessions`` sessions."""
    backend = Backend(name, "cpu", args.batch_size, args.threads)
    backend.check_available()
    shape = (args.batch_size, 3, 224, 224)
    start = time.perf_counter()
    runners = [prepare_runner(zoo.create(net), shape, backend, seed=i) for i, net in enumerate(NETS)]
    convert_s = time.perf_counter() - start
    sessions = []
    for session in range(args.sessions):
        per_round = repeats_per_round(runners, args.rounds, args.seconds_per_net, args.threads, minimum=2)
        stats = measure_interleaved(runners, warmup=3, rounds=args.rounds, per_round=per_round,
                                    threads=args.threads, seed=session)
        sessions.append([s.median for s in stats])
    ms = {net: statistics.median(row[i] for row in sessions) for i, net in enumerate(NETS)}
    order = sorted(NETS, key=ms.get)
    return {"backend": backend.label, "version": backend.provenance().get("backend_version"),
            "ms": ms, "range_ms": {net: [min(row[i] for row in sessions), max(row[i] for row in sessions)]
                                   for i, net in enumerate(NETS)},
            "sessions_ms": sessions, "rank": {net: order.index(net) + 1 for net in NETS},
            "fastest": order[0], "convert_s": convert_s, "load_average_at_end": os.getloadavg()}


def rank_agreement(runtimes: dict[str, dict]) -> dict[str, float]:
    """Kendall tau between the nets' latencies on every two runtimes."""
    def latencies(name: str) -> list[float]:
        return [runtimes[name]["ms"][net] for net in NETS]
    pairs = itertools.combinations(runtimes, 2)
    return {f"{a}>{b}": kendall_tau(latencies(a), latencies(b)) for a, b in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds-per-net", type=float, default=2.0)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    out = args.out_dir / "zoo_runtimes.json"
    previous = json.loads(out.read_text()) if out.is_file() else {}
    setting = f"b{args.batch_size}-t{args.threads}"
    entries = previous.get("settings", {}).get(setting, {}).get("runtimes", {})
    skipped = previous.get("settings", {}).get(setting, {}).get("skipped", {})

    def write() -> None:  # after every runtime: a later failure keeps the ones done
        result = {**previous, "device": device_name("cpu"), "nets": list(NETS)}
        result.setdefault("settings", {})[setting] = {
            "batch_size": args.batch_size, "threads": args.threads,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "runtimes": entries, "skipped": skipped, "kendall_tau": rank_agreement(entries)}
        out.write_text(json.dumps(result, indent=2) + "\n")

    for name in args.backends:
        try:
            entry = entries[name] = time_runtime(name, args)
        except ProxylessError as error:  # not installed here
            skipped[name] = str(error)
            print(f"{name}: skipped ({error})", flush=True)
        else:
            skipped.pop(name, None)
            fastest_first = sorted(NETS, key=entry["ms"].get)
            print(f"{name}: " + ", ".join(f"{n} {entry['ms'][n]:.2f} ms" for n in fastest_first)
                  + f" (converted in {entry['convert_s']:.0f} s)", flush=True)
        write()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
