"""The tree-cell search on this CPU: the `pyramid-tree-cpu` recipe on CIFAR-10, then a short training.

Units (each leaves benchmarks/results/pyramid_tree/<unit>.json; a finished unit is skipped, an
interrupted run resumes from its checkpoint in RUNS, default /tmp/pt_runs):

- ``search-s<seed>``: ``proxyless search --config pyramid-tree-cpu`` on ../shared/data/cifar10
  (16x16, weights and architecture on the two halves of the training set). Reported: the
  convergence per epoch (normalised entropy, mean max probability, argmax changes), the found
  net's MACs and op counts, wall time and peak memory.
- ``train-s<seed>``: the found net trained from scratch for ``--epochs`` epochs at 16x16 (the
  search's resolution) with the CIFAR recipe; ``train-random-s<seed>``: one architecture drawn
  uniformly from the same space, trained the same way, beside it. One pair of short trainings is
  not a ranking: it says whether the found net trains at least as well as a random one.

    python benchmarks/pyramid_tree_cpu.py search-s0 train-s0 train-random-s0
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
RESULTS = ROOT / "benchmarks" / "results" / "pyramid_tree"
RUNS = Path(os.environ.get("PT_RUNS", "/tmp/pt_runs"))
RESOLUTION = 16


def proxyless(args: list[str], log: Path) -> float:
    """Run ``proxyless ARGS`` as a child (output appended to ``log``); its wall seconds."""
    started = time.perf_counter()
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").is_file() else []  # peak RSS into the log
    with log.open("a") as out:
        code = subprocess.call([*timer, sys.executable, "-m", "proxylessnas", *args], stdout=out,
                               stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"proxyless {args[0]} failed; see {log}")
    return time.perf_counter() - started


def search_unit(seed: int) -> dict:
    run = RUNS / f"search-s{seed}"
    if not (run / "summary.json").is_file():
        resume = ["--resume"] if (run / "checkpoint.pt").is_file() else []
        proxyless(["search", *resume, "--config", "pyramid-tree-cpu", "--dataset", f"cifar10:{CIFAR}",
                   "--out", str(run), "--no-progress", f"run.seed={seed}"], RUNS / f"search-s{seed}.log")
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    ops = collections.Counter(summary["choices"].values())
    return {"unit": f"search-s{seed}", "run": str(run), "seed": seed, "edge_conv_init": "identity",
            "wall_s": wall_seconds(rows), "peak_rss_gb": peak_rss_gb(RUNS / f"search-s{seed}.log"),
            "decisions": len(summary["choices"]), "found_macs_m": summary["predicted_latency"],
            "cheapest_macs_m": summary["cheapest_latency"],
            "most_expensive_macs_m": summary["most_expensive_latency"],
            "supernet_test_accuracy": summary["test_accuracy"], "op_counts": dict(ops.most_common()),
            "convergence": summary["convergence"],
            "epochs": [{k: row.get(k) for k in ("epoch", "phase", "normalised_entropy", "mean_max_prob",
                                                "argmax_changes", "valid_acc", "argmax_latency")}
                       for row in rows]}


def wall_seconds(rows: list[dict]) -> float:
    """Wall time over resumed segments: ``seconds`` counts from each segment's start, so a drop
    marks a resume and the segment's last value is added."""
    total, last = 0.0, 0.0
    for row in rows:
        if row["seconds"] < last:
            total += last
        last = row["seconds"]
    return round(total + last, 1)


def peak_rss_gb(log: Path) -> float | None:
    """The largest 'Maximum resident set size' GNU time wrote into ``log`` (runs under time -v)."""
    sizes = [int(line.split(":")[1]) for line in log.read_text().splitlines()
             if "Maximum resident set size" in line] if log.is_file() else []
    return round(max(sizes) / 1024 ** 2, 3) if sizes else None


def random_arch(seed: int) -> Path:
    """An architecture drawn uniformly from the searched space (the search's own options)."""
    from proxylessnas import get_space
    from proxylessnas.hardware.validate import sample_archs
    from proxylessnas.search.config import load_config

    config = load_config("pyramid-tree-cpu")
    space = get_space(config.space.name, **config.space.options, resolution=RESOLUTION, num_classes=10)
    path = RUNS / f"random-s{seed}.json"
    sample_archs(space, 1, seed=1000 + seed)[0].save(path)
    return path


def inherited_accuracy(seed: int, arch_path: Path) -> float:
    """Test top-1 (%) of ``arch_path`` with the final supernet of ``search-s<seed>``'s weights,
    BatchNorm recalibrated on 20 training batches: how the search's own judge rates the net."""
    from proxylessnas import get_space
    from proxylessnas.data import BatchIterator, load_dataset, split_validation
    from proxylessnas.runtime.checkpoint import load_checkpoint
    from proxylessnas.space import Arch
    from proxylessnas.supernet import build_supernet
    from proxylessnas.train.bn_recalibration import recalibrate_bn
    from proxylessnas.train.loops import evaluate

    state = load_checkpoint(RUNS / f"search-s{seed}" / "checkpoint.pt")
    dataset = load_dataset(f"cifar10:{CIFAR}?resolution={RESOLUTION}")
    space = get_space("pyramid-tree", **state["config"]["space"]["options"], resolution=RESOLUTION,
                      num_classes=dataset.num_classes)
    supernet = build_supernet(space, dataset.num_classes)
    supernet.load_state_dict(state["supernet"])
    net = supernet.derive(Arch.load(arch_path), inherit=True)
    train_part, _ = split_validation(dataset, 0.5, seed=seed)
    batches = BatchIterator.for_dataset(dataset, train_part, 64, augment=False, seed=3)
    recalibrate_bn(net, batches.epoch(0), 20)
    test = BatchIterator.for_dataset(dataset, dataset.test, 500, augment=False, shuffle=False)
    return evaluate(net, test, dataset.num_classes).top1


def train_unit(seed: int, random: bool, epochs: int) -> dict:
    name = f"train-random-s{seed}" if random else f"train-s{seed}"
    run = RUNS / name
    arch = random_arch(seed) if random else RUNS / f"search-s{seed}" / "arch.json"
    metrics = run / "metrics.jsonl"

    def read() -> list[dict]:
        lines = metrics.read_text().splitlines() if metrics.is_file() else []
        return [json.loads(line) for line in lines if line]

    rows = read()
    if len(rows) < epochs:
        dataset = f"cifar10:{CIFAR}?resolution={RESOLUTION}"
        target = (["--resume", "--out", str(run)] if (run / "last.pt").is_file() else
                  [str(arch), "--dataset", dataset, "--epochs", str(epochs), "--out", str(run),
                   f"seed={seed}"])
        proxyless(["train", *target, "--threads", "1", "--no-progress"], RUNS / f"{name}.log")
        rows = read()
    from proxylessnas.nets.profile import count_params_macs
    from proxylessnas.train.commands import load_trained_model

    params, macs = count_params_macs(load_trained_model(run / "last.pt").net_config, RESOLUTION)
    return {"unit": name, "run": str(run), "arch": json.loads(Path(arch).read_text())["choices"],
            "epochs": epochs, "resolution": RESOLUTION, "params": params, "macs_m": macs / 1e6,
            "test_top1": [row["test_top1"] for row in rows], "best_test_top1": rows[-1]["best_test_top1"],
            "inherited_test_top1": inherited_accuracy(seed, Path(arch)),
            "wall_s": round(sum(row["epoch_seconds"] for row in rows), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("units", nargs="+", help="search-s<seed>, train-s<seed>, train-random-s<seed>")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the short trainings")
    args = parser.parse_args()
    if not CIFAR.is_dir():
        raise SystemExit(f"needs {CIFAR}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    for unit in args.units:
        path = RESULTS / f"{unit}.json"
        if path.is_file():
            print(f"{unit}: done")
            continue
        kind, _, seed = unit.rpartition("-s")
        if kind == "search":
            result = search_unit(int(seed))
        elif kind in ("train", "train-random"):
            result = train_unit(int(seed), kind == "train-random", args.epochs)
        else:
            raise SystemExit(f"unknown unit '{unit}'")
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k not in ("epochs", "arch")}, indent=2))


if __name__ == "__main__":
    main()
