"""Every number of the report, from the state alone (a rerun renders the same report), with the
machine, the latency tables and the commands."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from cifar_study.helpers import rank_descending, relative_gap, requested_target
from cifar_study.nets import macs_params, searched_arch, study_space
from cifar_study.runner import current_commit
from cifar_study.settings import CROSS_BACKENDS, MATCHED, SEARCHES, StudySettings


def machine_info() -> dict[str, Any]:
    import torch

    from proxylessnas import __version__
    from proxylessnas.hardware.measure import backend_version, device_name

    return {"cpu": device_name("cpu"), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": backend_version("onnxruntime"),
            "proxylessnas": __version__, "commit": current_commit(), "platform": platform.platform(),
            "load_average": list(os.getloadavg())}


def latency_tables() -> dict[str, Any]:
    """Path and provenance of the study space's cached tables (cpu, onnxruntime) used by the searches."""
    from proxylessnas.hardware.lut import LatencyTable
    from proxylessnas.hardware.targets import backend_for, cached_table_path

    tables = {}
    for hardware in ("cpu", "onnxruntime"):
        path = cached_table_path(study_space(), backend_for(hardware, 1, 1))
        if path.is_file():
            table = LatencyTable.load(path)
            keep = ("device", "backend", "backend_version", "threads", "clock", "date", "method")
            tables[hardware] = {"path": str(path), "keys": len(table.entries),
                                **{key: table.provenance.get(key) for key in keep}}
    return tables


def run_period(results: dict[str, Any]) -> str:
    period = results.get("units_finished")
    if not period:
        return "(no units)"
    return f"{period[0][:16].replace('T', ' ')} to {period[1][:16].replace('T', ' ')}"


def cross_table(units: dict[str, Any], settings: StudySettings,
                searches: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per search: the median over the passes on each backend, and the found net's MACs and params."""
    space = study_space()
    cross: dict[str, dict[str, Any]] = {}
    for job in SEARCHES:
        row: dict[str, Any] = {}
        for backend in CROSS_BACKENDS:
            passes = [units[f"measure/{job.name}/{backend}/{k}"]["result"]
                      for k in range(settings.cross_passes)]
            row[backend] = {"median": statistics.median(p["median"] for p in passes),
                            "passes": [p["median"] for p in passes], "command": passes[0]["command"]}
        arch = searched_arch(space, searches[job.name]["choices"])
        row["macs_m"], row["params_m"] = macs_params(space, arch)
        cross[job.name] = row
    return cross


def matched_rows(search: str, match: dict[str, Any], trainings: dict[str, Any],
                 searched: dict[str, Any]) -> dict[str, Any]:
    """Item 3 of one search: each matched net's latency, gap, size, accuracy and rank."""
    rows = []
    for name, net in match["nets"].items():
        training = trainings.get(search if name == "searched" else name)
        kind = "searched" if name == "searched" else ("mobilenet_v2" if name == match["mobilenet_v2"]
                                                      else "random")
        rows.append({"name": search if name == "searched" else name, "kind": kind,
                     "latency_ms": net["latency_ms"], "p10": net["p10"], "p90": net["p90"],
                     "gap": relative_gap(net["latency_ms"], match["nets"]["searched"]["latency_ms"]),
                     "macs_m": net["macs_m"], "params_m": net["params_m"],
                     "test_top1": training["test_top1"] if training else None,
                     "test_top5": training["test_top5"] if training else None})
    accuracies = {r["name"]: r["test_top1"] for r in rows if r["test_top1"] is not None}
    ranks = rank_descending(accuracies) if accuracies else {}
    for r in rows:
        r["rank"] = ranks.get(r["name"])
    return {"target_ms": requested_target(searched), "rows": rows,
            "final_entropy": searched.get("final_entropy"),
            "uniform_entropy": searched.get("uniform_entropy"),
            "searched_is_most_accurate": ranks.get(search) == 1 if ranks else None}


def collect_results(state: dict[str, Any], settings: StudySettings, search_data: str, train_data: str,
                    data: str, jobs: int) -> dict[str, Any]:
    """Everything the report needs, from the state alone (a rerun renders the same report)."""
    units = state["units"]
    trainings = {name[len("train/"):]: entry["result"] for name, entry in units.items()
                 if name.startswith("train/")}
    finished = [entry["finished"] for entry in units.values()]
    searches = {job.name: units[f"search/{job.name}"]["result"] for job in SEARCHES}
    matching = {search: units[f"match/{search}"]["result"] for search in MATCHED}
    item3 = {search: matched_rows(search, matching[search], trainings, searches[search])
             for search in MATCHED}
    seed_runs = ["cpu-low", *(f"cpu-low-seed{seed}" for seed in settings.noise_seeds)]
    noise = [trainings[name]["test_top1"] for name in seed_runs if name in trainings]
    return {
        "study": "CIFAR-10 study (issue 8, items 3-5)", "mode": settings.mode,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
        "settings": asdict(settings), "data": {"spec": data, "search": search_data, "train": train_data},
        "latency_tables": latency_tables(),
        "parallel_trainings": jobs, "searches": searches, "matching": matching,
        "cross": cross_table(units, settings, searches),
        "trainings": trainings, "item3": item3,
        "seed_spread": {"seeds": [0, *settings.noise_seeds], "test_top1": noise,
                        "range": (max(noise) - min(noise)) if len(noise) > 1 else None},
        "unit_seconds": {name: entry["seconds"] for name, entry in units.items()},
        "units_finished": [min(finished), max(finished)] if finished else None,
        "unit_commits": sorted({e.get("commit") or "not recorded" for e in units.values()}),
        "commands": state["commands"],
    }
