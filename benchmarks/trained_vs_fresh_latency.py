"""Does a derived net's time depend on its weights? The net of a finished search with the
search's trained weights (the checkpoint's ``child_state_dict``, what the search's final
measurement times) against the same net freshly built (what tables, calibration and the final
selection time; timed, like every net, with trained-like BatchNorm values: hardware/timed_weights.py),
interleaved in one session, each twice.

    python benchmarks/trained_vs_fresh_latency.py RUN_DIR --backend openvino-int8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    import torch

    from proxylessnas import build_net
    from proxylessnas.errors import ProxylessError
    from proxylessnas.hardware.measure import Backend, measure_interleaved, prepare_runner
    from proxylessnas.space.arch import Arch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished search's run directory")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        for name in ("arch.json", "checkpoint.pt"):
            if not (args.run_dir / name).is_file():
                raise ProxylessError(f"no {name} in {args.run_dir}", "RUN_DIR",
                                     "give the run directory of a finished search")
        arch = Arch.load(args.run_dir / "arch.json")
        space = arch.resolve_space()
        checkpoint = torch.load(args.run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
        if "child_state_dict" not in checkpoint:
            raise ProxylessError(f"the search in {args.run_dir} has not finished (no derived net's weights)",
                                 "RUN_DIR", "finish it with proxyless search --resume")
        trained = build_net(space, arch)
        trained.load_state_dict(checkpoint["child_state_dict"])
        nets = {"trained": trained.eval(), "fresh": build_net(space, arch).eval()}
        shape = (1, space.in_chs, space.resolution, space.resolution)
        backend = Backend(args.backend, "cpu", 1, 1)
        order = ["trained", "fresh", "trained", "fresh"]
        runners = [prepare_runner(nets[name], shape, backend) for name in order]
    except ProxylessError as error:
        print(error.line(), file=sys.stderr)
        raise SystemExit(2) from None
    stats = measure_interleaved(runners, warmup=10, rounds=args.rounds, per_round=5, threads=1)
    for name, s in zip(order, stats):
        print(f"{name:8s} median {s.median:.4f} ms  p10 {s.p10:.4f}  p90 {s.p90:.4f}")
    trained_ms = (stats[0].median + stats[2].median) / 2
    fresh_ms = (stats[1].median + stats[3].median) / 2
    print(f"trained / fresh: {trained_ms / fresh_ms:.3f}")


if __name__ == "__main__":
    main()
