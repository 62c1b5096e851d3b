"""The study's stages, in order: fast private latency tables (quick mode), the searches, the
matching sessions, cross measurements and trainings; then the report files. Every search,
training and cross measurement is a ``proxyless`` command (:meth:`Study.proxyless`)."""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cifar_study.matching import match
from cifar_study.nets import study_space
from cifar_study.runner import Study, UnitFailed
from cifar_study.settings import (
    CROSS_BACKENDS,
    MATCHED,
    RESULTS,
    SEARCH_CONFIG,
    SEARCHES,
    SPACE_ARGS,
    SearchJob,
)

SEARCH_KEEP = ("choices", "predicted_latency", "measured_latency", "unit", "target_latency_ms",
               "target_latency_table", "calibration", "predicted_latency_calibrated", "latency_mode",
               "cheapest_latency", "most_expensive_latency", "selection", "measured_within_tolerance",
               "test_accuracy", "epochs", "convergence")  # the summary.json entries a search's result keeps


# --- step 0: fast private tables (quick mode only)
def build_quick_tables(study: Study) -> dict[str, Any]:
    from proxylessnas.hardware.build import build_lut
    from proxylessnas.hardware.targets import backend_for, cached_table_path

    space = study_space()
    built = {}
    for hardware in ("cpu", "onnxruntime"):
        backend = backend_for(hardware, 1, 1)
        path = cached_table_path(space, backend)
        table = build_lut(space, backend, path, seconds_per_key=study.settings.table_seconds_per_key,
                          progress=False)
        built[hardware] = {"path": str(path), "keys": len(table.entries)}
    return built


# --- step 1: searches
def search_arguments(study: Study, job: SearchJob) -> list[str]:
    s = study.settings
    position = s.target_positions[0 if job.target == "low" else 1]
    arguments = [
        "search", "--config", SEARCH_CONFIG, "--dataset", study.search_data, "--hardware", job.hardware,
        "--strategy", job.strategy,
        *(["--binary-mode", job.binary_mode] if job.strategy == "gradient" else []),
        "--warmup-epochs", str(s.search_warmup_epochs),
        "--epochs", str(s.search_epochs), "--out", study.show_path(study.search_dir(job.name)),
        "--no-progress", *SPACE_ARGS, f"data.batch_size={s.search_batch_size}",
        f"data.valid_batch_size={s.search_batch_size}", f"data.valid_size={s.search_valid_size}",
        "data.eval_batch_size=500", f"search.steps_per_epoch={s.search_steps_per_epoch}",
        f"latency.target_position={position}", f"latency.calibrate={s.search_calibration_nets}",
        *s.arch_args, "run.threads=1", "run.device=cpu", "run.seed=0"]
    if job.strategy == "gradient":
        arguments.append("arch.update_every=1")
    else:
        arguments += ["arch.update_every=5", "reinforce.samples=8"]
    if not s.search_plots:
        arguments.append("run.plots=false")
    return arguments


def run_search(study: Study, job: SearchJob) -> dict[str, Any]:
    """``proxyless search`` (continued with --resume when it left a checkpoint), then its result."""
    from proxylessnas.runtime.metrics import read_metrics
    from proxylessnas.search.run_dir import finished_summary

    folder = study.search_dir(job.name)
    arguments = search_arguments(study, job)
    started = time.perf_counter()
    summary = finished_summary(folder)
    resumed = False
    if summary is None:
        resumed = (folder / "checkpoint.pt").exists()
        study.proxyless(f"search-{job.name}", arguments + (["--resume"] if resumed else []))
        summary = finished_summary(folder)
        if summary is None:
            raise UnitFailed(f"search {job.name} ended without summary.json ({folder})")
    wall = time.perf_counter() - started
    metrics = read_metrics(folder / "metrics.jsonl")
    s = study.settings
    weight_steps = (s.search_warmup_epochs + s.search_epochs) * s.search_steps_per_epoch
    uniform = sum(math.log(len(layer.candidates)) for layer in study_space().searched_layers)
    return {"job": asdict(job), "command": study.shown(arguments), "wall_seconds": round(wall, 1),
            "resumed": resumed, "weight_steps": weight_steps,
            "final_entropy": metrics[-1].get("entropy"), "uniform_entropy": uniform,
            "arch_path": study.show_path(folder / "arch.json"),
            "epoch_seconds": [row.get("seconds") for row in metrics],
            **{key: summary.get(key) for key in SEARCH_KEEP}}


# --- step 3: cross measurements with ``proxyless latency measure``
def measure_arguments(study: Study, net: str, arch_path: str, backend: str, pass_index: int) -> list[str]:
    out = study.work / "measure" / f"{net}-{backend}-{pass_index}.json"
    return ["latency", "measure", arch_path, "--backend", backend, "--threads", "1",
            "--rounds", str(study.settings.cross_rounds), "--json", study.show_path(out)]


def measure(study: Study, net: str, arch_path: str, backend: str, pass_index: int) -> dict[str, Any]:
    out = study.work / "measure" / f"{net}-{backend}-{pass_index}.json"
    arguments = measure_arguments(study, net, arch_path, backend, pass_index)
    study.proxyless(f"measure-{net}-{backend}-{pass_index}", arguments)
    result = json.loads(out.read_text())
    return {"median": result["median"], "p10": result["p10"], "p90": result["p90"],
            "command": study.shown(arguments)}


# --- step 4: trainings
def train_arguments(study: Study, arch_path: str, out: Path, seed: int = 0) -> list[str]:
    s = study.settings
    return ["train", arch_path, "--dataset", study.train_data, "--epochs", str(s.train_epochs),
            "--batch-size", str(s.train_batch_size), "--seed", str(seed), "--device", "cpu",
            "--out", study.show_path(out), "--no-progress"]


def train(study: Study, name: str, arch_path: str, seed: int = 0) -> dict[str, Any]:
    """``proxyless train`` (continued with --resume when it left last.pt), then its numbers."""
    from proxylessnas.runtime.metrics import read_metrics

    out = study.train_dir(name)
    arguments = train_arguments(study, arch_path, out, seed)
    epochs = study.settings.train_epochs
    metrics = read_metrics(out / "metrics.jsonl", required=False)
    if len(metrics) < epochs:
        resume = (out / "last.pt").exists()
        study.proxyless(f"train-{name}", arguments + (["--resume"] if resume else []))
        metrics = read_metrics(out / "metrics.jsonl", required=False)
    if len(metrics) != epochs:
        raise UnitFailed(f"training {name} ended after {len(metrics)} of {epochs} epochs ({out})")
    last = metrics[-1]
    return {"command": study.shown(arguments), "arch_path": arch_path, "seed": seed,
            "test_top1": last["test_top1"], "test_top5": last["test_top5"],
            "train_top1": last["train_top1"], "per_epoch_top1": [m["test_top1"] for m in metrics],
            "epoch_seconds": [m["epoch_seconds"] for m in metrics]}


def trainings(study: Study) -> dict[str, tuple[str, int]]:
    """Training name -> (arch path, seed), each net once."""
    runs: dict[str, tuple[str, int]] = {}
    for job in SEARCHES:
        runs[job.name] = (study.state.result(f"search/{job.name}")["arch_path"], 0)
    for search in MATCHED:
        matched = study.state.result(f"match/{search}")
        for name, path in matched["arch_paths"].items():
            runs[name] = (path, 0)
    for seed in study.settings.noise_seeds:
        runs[f"cpu-low-seed{seed}"] = (runs["cpu-low"][0], seed)
    return runs


# --- the whole study
def run_study(study: Study) -> dict[str, Any]:
    """Every unit not finished yet, in order (trainings ``study.jobs`` at a time); then the report."""
    if study.settings.table_seconds_per_key is not None:
        study.unit("tables", lambda: build_quick_tables(study))
    for job in SEARCHES:
        study.unit(f"search/{job.name}", lambda job=job: run_search(study, job))
    for index, search in enumerate(MATCHED):
        study.unit(f"match/{search}", lambda name=search, seed=1000 * (index + 1): match(study, name, seed))
    for pass_index in range(study.settings.cross_passes):
        for job in SEARCHES:
            path = study.state.result(f"search/{job.name}")["arch_path"]
            for backend in CROSS_BACKENDS:
                study.unit(f"measure/{job.name}/{backend}/{pass_index}",
                           lambda n=job.name, p=path, b=backend, k=pass_index: measure(study, n, p, b, k))
    train_all(study, {f"train/{name}": (arch, seed) for name, (arch, seed) in trainings(study).items()})
    return write_report(study)


def train_all(study: Study, runs: dict[str, tuple[str, int]]) -> None:
    """Unit ``train/<name>`` -> (arch path, seed), ``study.jobs`` at a time; each trains in
    ``<work>/train/<name>``."""
    with ThreadPoolExecutor(max_workers=study.jobs) as pool:
        futures = [pool.submit(study.unit, unit, lambda u=unit, a=arch, s=seed:
                               train(study, u.removeprefix("train/"), a, s))
                   for unit, (arch, seed) in runs.items()]
        try:
            for future in futures:
                future.result()
        except BaseException:
            study.stopping = True  # queued trainings are not started; a running one finishes
            for future in futures:
                future.cancel()
            raise


def write_report(study: Study) -> dict[str, Any]:
    """``study_cifar.json``, ``study_cifar.md`` and the two figures, from the state alone."""
    from cifar_study.figures import plot_accuracy_vs_latency, plot_specialisation
    from cifar_study.markdown import render_markdown
    from cifar_study.results import collect_results
    from proxylessnas.runtime.atomic import write_json_atomic

    results = collect_results(study.state.data, study.settings, study.search_data, study.train_data,
                              study.data, study.jobs)
    folder = RESULTS / study.settings.mode
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "study_cifar.json", results)
    plot_accuracy_vs_latency(results, folder / "accuracy_vs_latency.png")
    plot_specialisation(results, folder / "specialisation_diagrams.png")
    (folder / "study_cifar.md").write_text(render_markdown(results))
    study.log(f"wrote {study.show_path(folder)}/study_cifar.json, study_cifar.md, accuracy_vs_latency.png, "
              "specialisation_diagrams.png")
    return results
