"""NAS-Bench-201 as the exact judge of our searches, in resumable units.

The benchmark's table (../shared/data/nasbench201/nats_bench.csv: the true 200-epoch test
accuracy of all 15,625 cells on CIFAR-10, CIFAR-100 and ImageNet16-120) is read here only, to
judge what a search found; no search reads it (tests/test_nasbench201_judge.py checks that
nothing under src/ opens it).

Units (each leaves benchmarks/results/nasbench201/units/<unit>.json; a finished unit is skipped,
an interrupted search resumes from its checkpoint):

- ``search-<variant>-s<seed>``: ``proxyless search --config nasbench201`` on CIFAR-10 (the JPEG
  copy in ../shared/data/cifar10; the benchmark trained on the original images). Variants:
  ``two`` (the recipe: binary gates, mode two), ``full_v2``, ``reinforce``, ``darts``,
  ``gumbel``, ``two_uniform`` and ``reinforce_uniform`` (weight steps on uniform paths, not on
  paths drawn from the architecture distribution); ``-r<pixels>`` before the seed
  is the image side the search sees (``-r16``: the recipe's 16x16; without it 32x32, the
  benchmark's own). Reported: the found cell, its table
  accuracies, rank and percentile among the 15,625, wall time, peak memory, final normalised
  entropy, and the anytime curve (the table accuracy of the argmax cell after every epoch).
- ``ranking`` (kept as ``ranking-<source>``): the supernet of ``--source`` (default
  ``search-two-s0``) ranks >= 100 uniformly drawn cells by inherited-weight validation
  accuracy after BatchNorm recalibration; Kendall tau and Spearman against the table, over all
  and over the table's top 10 % among them.
- ``macs-<percent>[-r<pixels>]``: a MACs-constrained search (``latency.mode=band`` just below
  the budget) at <percent> of the way from the cheapest cell above 80 % to the most expensive cell, against
  the table's best cell within the same budget (analytic MACs of all 15,625 cells).
- ``latency-<percent>-r<pixels>``: the same for a CPU latency budget, priced by a torch table
  (batch 1, one thread) of the space built here; the found cell and the best cell within the
  budget are measured end to end.

    python benchmarks/nasbench201.py search-two-r16-s0 search-two-r16-s1 [--set arch.lr=0.02 ...]
    python benchmarks/nasbench201.py ranking
    python benchmarks/nasbench201.py --report     # runs.json from the finished units
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

from proxylessnas.hardware.validate import kendall_tau  # tau-b, the latency report's
from proxylessnas.runtime.atomic import atomic_write

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TABLE = SHARED / "data" / "nasbench201" / "nats_bench.csv"
CIFAR = SHARED / "data" / "cifar10"
RESULTS = ROOT / "benchmarks" / "results" / "nasbench201"
RUNS = Path(os.environ.get("NB201_RUNS", "/tmp/nasbench201_runs"))

VARIANTS: dict[str, list[str]] = {
    "two": ["search.weight_paths=distribution"],  # the paper's weight paths (the recipe's before)
    "full_v2": ["search.binary_mode=full_v2"],
    "reinforce": ["search.strategy=reinforce", "reinforce.samples=8", "arch.update_every=5",
                  "search.weight_paths=distribution"],
    "darts": ["search.mixed_op=darts", "arch.entropy_weight=0.0", "search.weight_paths=distribution"],
    "gumbel": ["search.mixed_op=gumbel", "search.weight_paths=distribution"],
    "two_uniform": ["search.weight_paths=uniform"],
    "reinforce_uniform": ["search.strategy=reinforce", "reinforce.samples=8", "arch.update_every=5",
                          "search.weight_paths=uniform"],
}
PUBLISHED = [  # CIFAR-10 test accuracy of the found cell (NAS-Bench-201 paper, Table 5; later papers)
    ("DARTS-V1 / V2", 54.30, "NAS-Bench-201 paper"), ("ENAS", 54.30, "NAS-Bench-201 paper"),
    ("SETN", 87.64, "NAS-Bench-201 paper"), ("RSPS", 87.66, "NAS-Bench-201 paper"),
    ("GDAS", 93.61, "NAS-Bench-201 paper"), ("random search", 93.70, "NAS-Bench-201 paper"),
    ("REINFORCE", 93.85, "NAS-Bench-201 paper"), ("REA", 93.92, "NAS-Bench-201 paper"),
    ("DSNAS", 93.08, "DSNAS paper"), ("FairNAS", 93.23, "FairNAS paper"),
    ("DrNAS / beta-DARTS", 94.36, "their papers"), ("optimum", 94.37, "the table"),
]


# -- the judge ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def table() -> dict[str, tuple[float, float, float]]:
    """Benchmark string -> (CIFAR-10, CIFAR-100, ImageNet16-120) test accuracy (%)."""
    with TABLE.open() as handle:
        return {row["ArchitectureString"]: (float(row["CIFAR10TestAccuracy200Epochs"]),
                                            float(row["CIFAR100TestAccuracy200Epochs"]),
                                            float(row["ImageNetTestAccuracy200Epochs"]))
                for row in csv.DictReader(handle)}


@lru_cache(maxsize=1)
def cifar10_sorted() -> list[float]:
    return sorted((acc[0] for acc in table().values()), reverse=True)


def judge(string: str) -> dict:
    """Table accuracies, rank (1 = best) and percentile (100 = best) of one cell on CIFAR-10."""
    c10, c100, in16 = table()[string]
    ranking = cifar10_sorted()
    rank = 1 + sum(1 for acc in ranking if acc > c10)
    return {"arch": string, "cifar10_test": c10, "cifar100_test": c100, "imagenet16_test": in16,
            "rank": rank, "percentile": round(100.0 * (1 - (rank - 1) / len(ranking)), 3)}


def all_cells() -> list[str]:
    from proxylessnas.space.nasbench201 import CANDIDATES, format_string

    return [format_string(ops) for ops in itertools.product(CANDIDATES.split(","), repeat=6)]


@lru_cache(maxsize=2)
def cell_macs(resolution: int = 32) -> dict[str, float]:
    """Analytic MMACs of every cell's standalone net (10 classes, ``resolution`` pixels a side)."""
    from proxylessnas import get_space
    from proxylessnas.hardware.graph_cost import GraphFlopsCostModel
    from proxylessnas.space.nasbench201 import CANDIDATES, format_string

    space = get_space("nasbench201", resolution=resolution)
    fixed, vectors = GraphFlopsCostModel("macs").candidate_costs(space)
    names = CANDIDATES.split(",")
    return {format_string(ops): fixed + sum(float(v[names.index(op)]) for v, op in zip(vectors, ops))
            for ops in itertools.product(names, repeat=6)}


# -- units --------------------------------------------------------------------------------------
def unit_path(unit: str) -> Path:
    return RESULTS / "units" / f"{unit}.json"


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def dataset_spec(resolution: int) -> str:
    """The CIFAR-10 copy, downscaled to ``resolution`` pixels a side when below 32."""
    return f"cifar10:{CIFAR}" + (f"?resolution={resolution}" if resolution != 32 else "")


def run_search(run_dir: Path, overrides: list[str], threads: int,
               resolution: int = 32) -> tuple[float, float, int]:
    """Run (or resume) one search as a child process; (wall seconds of this call, peak RSS GB,
    exit code)."""
    command = [sys.executable, "-m", "proxylessnas", "search", "--config", "nasbench201",
               "--dataset", dataset_spec(resolution), "--out", str(run_dir), "--no-progress",
               f"run.threads={threads}", *overrides]
    if resolution == 32:  # the recipe downscales to 16x16
        command.append("data.resolution=32")
    if (run_dir / "checkpoint.pt").is_file():
        command.insert(4, "--resume")
    started = time.perf_counter()
    log = (run_dir.parent / f"{run_dir.name}.log").open("a")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    # a SIGTERM to this script stops the search the same way (it checkpoints), and the time spent
    # is still counted below
    previous = signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM))
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return (time.perf_counter() - started, usage.ru_maxrss / 1024 ** 2,
            os.waitstatus_to_exitcode(status))


def search_unit(unit: str, variant: str, seed: int, threads: int, extra: list[str]) -> dict:
    """``variant`` is a key of VARIANTS, optionally with ``-r<pixels>`` (images downscaled)."""
    from proxylessnas.space.nasbench201 import format_string

    variant, _, pixels = variant.partition("-r")
    resolution = int(pixels) if pixels else 32

    run_dir = RUNS / unit
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    progress_file = RUNS / f"{unit}.wall.json"
    spent = json.loads(progress_file.read_text()) if progress_file.is_file() else {"wall_s": 0.0, "rss_gb": 0}
    if not (run_dir / "summary.json").is_file():
        wall, rss, code = run_search(run_dir, [*VARIANTS[variant], f"run.seed={seed}", *extra], threads,
                                     resolution)
        spent = {"wall_s": spent["wall_s"] + wall, "rss_gb": max(spent["rss_gb"], rss)}
        progress_file.write_text(json.dumps(spent))  # an interrupted segment's time counts too
        if code != 0:
            raise SystemExit(f"search stopped or failed ({run_dir}); see {run_dir}.log; rerun to resume")
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    decisions = list(rows[-1]["arch"])
    anytime = [{"epoch": row["epoch"], "phase": row["phase"],
                "cifar10_test": table()[format_string([row["arch"][d] for d in decisions])][0],
                "normalised_entropy": row.get("normalised_entropy")} for row in rows]
    found = judge(format_string([summary["choices"][d] for d in decisions]))
    return {"unit": unit, "strategy": variant, "seed": seed, "resolution": resolution,
            "edge_conv_init": "identity", **found, "wall_s": round(spent["wall_s"], 1),
            "peak_rss_gb": round(spent["rss_gb"], 3),
            "normalised_entropy": summary["convergence"]["normalised_entropy"],
            "collapse": summary["convergence"].get("collapse"),
            "supernet_test_accuracy": summary["test_accuracy"], "macs": cell_macs()[found["arch"]],
            "searched_macs": summary["predicted_latency"],
            "overrides": [*VARIANTS[variant], *extra], "anytime": anytime, "op_mass": op_mass(rows)}


def op_mass(rows: list[dict]) -> list[dict]:
    """Per epoch, each op's probability averaged over the cell's six edges (sums to 1): where the
    architecture distribution's mass goes, e.g. onto skip connections in a DARTS collapse."""
    from proxylessnas.space.nasbench201 import CANDIDATES

    names = CANDIDATES.split(",")
    return [{"epoch": row["epoch"], "phase": row["phase"],
             **{name: round(statistics.fmean(p[i] for p in row["probs"].values()), 4)
                for i, name in enumerate(names)}}
            for row in rows if row.get("probs")]


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))


def ranking_prefix(top_percent: float | None, finetune_steps: int) -> str:
    """``ranking-[topP-][ftN-]``: the unit name's part before the source."""
    return ("ranking-" + ("" if top_percent is None else f"top{top_percent:g}-")
            + (f"ft{finetune_steps}-" if finetune_steps else ""))


def finetune(net, batches, steps: int, lr: float = 0.025) -> None:
    """``steps`` SGD steps (Nesterov momentum 0.9, weight decay 5e-4, constant ``lr``, the
    recipe's weight optimiser) on the inherited net, from augmented training batches."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    net.train()
    epoch, done = 0, 0
    while done < steps:
        for images, labels in batches.epoch(epoch):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(images), labels).backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
        epoch += 1


def ranking_unit(source: str, samples: int, valid_images: int, threads: int,
                 top_percent: float | None = None, finetune_steps: int = 0) -> dict:
    """Inherited-weight validation accuracy of ``samples`` uniform cells against the table.

    ``source`` is a run under RUNS (its checkpoint.pt) or a checkpoint file ``<name>.pt`` there
    (a copy taken after some epoch); the images are those the run searched on (its dataset spec,
    e.g. ``?resolution=16``). With ``top_percent`` the cells are drawn from the table's best
    ``top_percent`` % only, and the source's found cell (its unit record) is scored beside them:
    can this supernet tell the good cells apart, and did the search pick its own favourite?
    With ``finetune_steps`` each inherited net is first trained that many steps on its own
    (:func:`finetune`): does a short training of the finalists undo the supernet's bias?"""
    import random

    import torch

    from proxylessnas import get_space
    from proxylessnas.data import BatchIterator, load_dataset, split_validation
    from proxylessnas.runtime.checkpoint import load_checkpoint
    from proxylessnas.space.nasbench201 import arch_from_string
    from proxylessnas.supernet import build_supernet
    from proxylessnas.train.bn_recalibration import recalibrate_bn
    from proxylessnas.train.loops import evaluate

    torch.set_num_threads(threads)
    state = load_checkpoint(RUNS / source if source.endswith(".pt") else RUNS / source / "checkpoint.pt")
    dataset = load_dataset(state["config"]["data"]["dataset"])
    train_part, valid_part = split_validation(dataset, 0.5, seed=int(state["config"]["run"]["seed"]))
    space = get_space("nasbench201")
    supernet = build_supernet(space, dataset.num_classes)
    supernet.load_state_dict(state["supernet"])
    pool = all_cells()
    if top_percent is not None:
        pool = sorted(pool, key=lambda c: -table()[c][0])[:round(len(pool) * top_percent / 100)]
    cells = random.Random(0).sample(pool, samples)
    found_unit = unit_path(source)  # a search's unit record: its found cell and edge-conv init
    search_record = json.loads(found_unit.read_text()) if found_unit.is_file() else {}
    found = search_record.get("arch") if top_percent is not None else None
    if found is not None and found not in cells:
        cells.append(found)
    valid = split_validation(valid_part, valid_images, seed=1)[1]  # class-balanced subset
    rows, started = [], time.perf_counter()
    for number, string in enumerate(cells):
        net = supernet.derive(arch_from_string(string, space), inherit=True)
        if finetune_steps:
            finetune(net, BatchIterator.for_dataset(dataset, train_part, 64, augment=True, seed=number),
                     finetune_steps)
        batches = BatchIterator.for_dataset(dataset, train_part, 64, augment=False, seed=number)
        recalibrate_bn(net, batches.epoch(0), 20)
        test = BatchIterator.for_dataset(dataset, valid, 500, augment=False, shuffle=False)
        accuracy = evaluate(net, test, dataset.num_classes).top1
        rows.append({"arch": string, "inherited_valid": accuracy, "cifar10_test": table()[string][0],
                     "found": string == found})
        print(f"{number + 1}/{len(cells)} {accuracy:.2f} {table()[string][0]:.2f}", flush=True)
    inherited = [r["inherited_valid"] for r in rows]
    truth = [r["cifar10_test"] for r in rows]
    cut = sorted(truth, reverse=True)[max(0, len(truth) // 10 - 1)]
    top = [r for r in rows if r["cifar10_test"] >= cut]
    top_pairs = ([r["inherited_valid"] for r in top], [r["cifar10_test"] for r in top])
    prefix = ranking_prefix(top_percent, finetune_steps)
    found_row = next((r for r in rows if r["found"]), None)
    return {"unit": prefix + source.removesuffix(".pt"), "source": source, "top_percent": top_percent,
            "finetune_steps": finetune_steps,
            "found_cell": found_row,
            "found_inherited_rank": (None if found_row is None else  # 1 = the supernet's favourite
                                     1 + sum(r["inherited_valid"] > found_row["inherited_valid"]
                                             for r in rows)),
            "epochs_trained": state["epoch"],
            "edge_conv_init": state.get("edge_conv_init") or search_record.get("edge_conv_init"),
            "dataset": state["config"]["data"]["dataset"], "samples": samples, "valid_images": len(valid),
            "kendall_tau": kendall_tau(inherited, truth), "spearman": spearman(inherited, truth),
            "top10_count": len(top),
            "top10_kendall_tau": kendall_tau(*top_pairs), "top10_spearman": spearman(*top_pairs),
            "wall_s": round(time.perf_counter() - started, 1), "cells": rows}


def macs_budget(percent: int, resolution: int = 32) -> tuple[float, dict]:
    """The budget ``percent`` % of the way from the cheapest cell above 80 % to the most expensive,
    and the table's best cell within it, in MACs at ``resolution`` (every cell's MACs at 16x16
    are an increasing affine map of those at 32x32, so the budget picks the same cells)."""
    macs = cell_macs(resolution)
    cheapest = min(m for s, m in macs.items() if table()[s][0] > 80.0)
    budget = cheapest + percent / 100 * (max(macs.values()) - cheapest)
    best = max((s for s, m in macs.items() if m <= budget), key=lambda s: table()[s][0])
    return budget, {**judge(best), "macs": macs[best]}


def macs_unit(unit: str, percent: int, seed: int, threads: int, resolution: int = 32) -> dict:
    """A search that spends the budget: the band controller aims at [0.905, 1] x budget (target
    budget / 1.05, tolerance 5 %), so parameter-free cells cannot satisfy it by undershooting.
    The search counts MACs at its own resolution; the budget and the verdict are at 32x32."""
    budget, best = macs_budget(percent)
    searched_budget = macs_budget(percent, resolution)[0]
    constraint = ["latency.mode=band", "latency.tolerance=0.05", f"latency.target={searched_budget / 1.05}",
                  "latency.controller_cost=expected"]
    variant = "two" if resolution == 32 else f"two-r{resolution}"
    result = search_unit(unit, variant, seed, threads, constraint)
    gap = round(best["cifar10_test"] - result["cifar10_test"], 3)
    return {**result, "budget_macs": budget, "budget_met": result["macs"] <= budget + 1e-9,
            "table_best_in_budget": best, "gap_to_best": gap}


def latency_table_path(resolution: int) -> tuple[Path, dict]:
    """A torch CPU table (batch 1, one thread) of the space at ``resolution``, built here once,
    with its predictor fitted on 60 cells and scored on 40 others (the table sum misses the
    node sums and per-op overhead of whole nets); (path, the validation report)."""
    from proxylessnas import get_space
    from proxylessnas.hardware.build import build_lut
    from proxylessnas.hardware.measure import Backend
    from proxylessnas.hardware.validate import SpeedGauge, fit_and_validate

    path = RUNS / f"latency_table_nasbench201_r{resolution}.json"
    report_path = path.with_suffix(".validation.json")
    if not report_path.is_file():
        RUNS.mkdir(parents=True, exist_ok=True)
        space = get_space("nasbench201", resolution=resolution)
        table = build_lut(space, Backend("torch"), path, progress=False, overwrite=True)
        report, _ = fit_and_validate(space, table, Backend("torch"), 60, 40,
                                     gauge=SpeedGauge.for_space(space))
        table.save(path)
        write_json(report_path, report)
    return path, json.loads(report_path.read_text())


def cell_latency(path: Path, resolution: int) -> dict[str, float]:
    """Predicted latency (ms: table and predictor) of every cell's standalone net at ``resolution``."""
    from proxylessnas import get_space
    from proxylessnas.hardware.lut import LatencyTable
    from proxylessnas.hardware.targets import table_model
    from proxylessnas.space.nasbench201 import CANDIDATES, format_string

    space = get_space("nasbench201", resolution=resolution)
    fixed, vectors = table_model(LatencyTable.load(path)).candidate_costs(space)
    names = CANDIDATES.split(",")
    return {format_string(ops): fixed + sum(float(v[names.index(op)]) for v, op in zip(vectors, ops))
            for ops in itertools.product(names, repeat=6)}


def measured_latency(cells: list[str], resolution: int, path: Path, gauge_cells: int = 8
                     ) -> tuple[list[float], float]:
    """End-to-end median latency (ms) of each cell's net here (torch, batch 1, one thread), and
    the machine's speed now against the table's session: the median of measured / predicted over
    ``gauge_cells`` cells of the table's validation set, measured in the same chunk."""
    from proxylessnas import get_space
    from proxylessnas.hardware.lut import LatencyTable
    from proxylessnas.hardware.measure import Backend
    from proxylessnas.hardware.targets import table_model
    from proxylessnas.hardware.validate import measure_networks, sample_archs
    from proxylessnas.space.nasbench201 import arch_from_string

    space = get_space("nasbench201", resolution=resolution)
    gauge = sample_archs(space, gauge_cells, seed=0)  # fit_and_validate's validation seed
    archs = [arch_from_string(c, space) for c in cells] + gauge
    stats = measure_networks(space, archs, Backend("torch"), rounds=30)
    model = table_model(LatencyTable.load(path))
    speed = statistics.median(s.median / model.arch_cost(space, a)
                              for s, a in zip(stats[len(cells):], gauge))
    return [s.median for s in stats[:len(cells)]], speed


def latency_unit(unit: str, percent: int, seed: int, threads: int, resolution: int) -> dict:
    """A search for a CPU latency budget priced by a table built here: the budget is ``percent`` %
    of the way from the cheapest cell above 80 % to the most expensive (predicted); the found
    cell and the table's best cell within the budget are then measured end to end."""
    path, validation = latency_table_path(resolution)
    latency = cell_latency(path, resolution)
    cheapest = min(m for c, m in latency.items() if table()[c][0] > 80.0)
    budget = cheapest + percent / 100 * (max(latency.values()) - cheapest)
    best = max((c for c, m in latency.items() if m <= budget), key=lambda c: table()[c][0])
    constraint = [f"hardware.target={path}", "latency.mode=band", "latency.tolerance=0.05",
                  f"latency.target={budget / 1.05}", "latency.controller_cost=expected"]
    result = search_unit(unit, f"two-r{resolution}", seed, threads, constraint)
    (found_ms, best_ms), speed = measured_latency([result["arch"], best], resolution, path)
    return {**result, "budget_ms": budget, "table": str(path), "predictor_validation": validation,
            "predicted_ms": latency[result["arch"]], "measured_ms": found_ms,
            "budget_met_predicted": latency[result["arch"]] <= budget + 1e-9,
            "speed_now_over_table_session": speed,
            "measured_over_budget": found_ms / speed / budget,  # on the table session's speed scale
            "table_best_in_budget": {**judge(best), "predicted_ms": latency[best], "measured_ms": best_ms},
            "gap_to_best": round(table()[best][0] - result["cifar10_test"], 3)}


# -- report -------------------------------------------------------------------------------------
def report() -> None:
    units = [json.loads(p.read_text()) for p in sorted((RESULTS / "units").glob("*.json"))]
    runs = [{k: v for k, v in u.items() if k != "anytime"} for u in units if u["unit"].startswith("search-")]
    write_json(RESULTS / "runs.json", runs)
    by_recipe: dict[tuple, list[float]] = {}
    for run in runs:
        key = (run["strategy"], run.get("resolution", 32), run.get("edge_conv_init", "default"))
        by_recipe.setdefault(key, []).append(run["cifar10_test"])
    for (strategy, side, init), values in by_recipe.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{strategy:10s} {side}x{side} {init:8s} {statistics.fmean(values):.2f} +- {spread:.2f} "
              f"over {len(values)} seed(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("units", nargs="*", help="search-<variant>-s<seed>, ranking, macs-<percent>")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per search")
    parser.add_argument("--samples", type=int, default=100, help="cells for the ranking unit")
    parser.add_argument("--valid-images", type=int, default=2000, help="validation images per cell (ranking)")
    parser.add_argument("--source", default="search-two-s0", help="the search whose supernet is ranked")
    parser.add_argument("--top-percent", type=float, default=None,
                        help="ranking: draw the cells from the table's best P %% only "
                             "(unit ranking-topP-<source>)")
    parser.add_argument("--finetune-steps", type=int, default=0,
                        help="ranking: train each inherited net N steps on its own before scoring it")
    parser.add_argument("--report", action="store_true", help="write runs.json from the finished units")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra override for the search units (repeatable)")
    args = parser.parse_args()
    if not TABLE.is_file() or not CIFAR.is_dir():
        raise SystemExit(f"needs {TABLE} and {CIFAR}")
    for unit in args.units:
        if unit == "ranking":  # one ranking per supernet, pool and fine-tuning
            unit = ranking_prefix(args.top_percent, args.finetune_steps) + args.source.removesuffix(".pt")
        if unit_path(unit).is_file():
            print(f"{unit}: done")
            continue
        if unit.startswith("search-"):
            variant, _, seed = unit[len("search-"):].rpartition("-s")
            result = search_unit(unit, variant, int(seed), args.threads, args.overrides)
        elif unit.startswith("ranking-"):
            result = ranking_unit(args.source, args.samples, args.valid_images, args.threads,
                                  args.top_percent, args.finetune_steps)
        elif unit.startswith("latency-"):  # latency-<percent>-r<pixels>
            percent, _, pixels = unit[len("latency-"):].partition("-r")
            result = latency_unit(unit, int(percent), 0, args.threads, int(pixels or 16))
        elif unit.startswith("macs-"):  # macs-<percent>[-r<pixels>]
            percent, _, pixels = unit[len("macs-"):].partition("-r")
            result = macs_unit(unit, int(percent), 0, args.threads, int(pixels or 32))
        else:
            raise SystemExit(f"unknown unit '{unit}'")
        write_json(unit_path(unit), result)
        print(json.dumps({k: v for k, v in result.items() if k not in ("anytime", "cells")}, indent=2))
    if args.report:
        report()


if __name__ == "__main__":
    main()
