"""Paired mode (issue 16, part 4): each converged search against the best random net of equal
latency, both trained with several seeds; the paired differences and their spread.

Stages: the searches (``PAIRED_SEARCHES``, the demo's converged architecture settings), the
matching sessions of :mod:`cifar_study.matching`, one training per net at the first seed (the
searched net and its random rivals; the best rival is the one with the highest test top-1 there),
then the searched net and that rival at the other seeds. The difference at seed s is
``d_s = top1(searched, s) - top1(best random, s)``; the rival is chosen on the first seed, which
favours it there, so the report also gives the mean over the other seeds alone."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from cifar_study.helpers import markdown_table, rank_descending, requested_target
from cifar_study.matching import match
from cifar_study.results import latency_tables, machine_info, run_period
from cifar_study.runner import Study
from cifar_study.settings import PAIRED_SEARCHES, RESULTS
from cifar_study.stages import run_search, train_all


def training_unit(name: str, seed: int, first_seed: int) -> str:
    """``train/<name>`` at the first seed (as the other modes name it), ``train/<name>-seed<s>`` after."""
    return f"train/{name}" if seed == first_seed else f"train/{name}-seed{seed}"


def best_rival(units: dict[str, Any], search: str, first_seed: int) -> str:
    """The random net of ``search``'s matching with the highest test top-1 at the first seed."""
    def top1(name: str) -> float:
        return units[training_unit(name, first_seed, first_seed)]["result"]["test_top1"]

    return max(units[f"match/{search}"]["result"]["random"], key=top1)


def run_paired(study: Study) -> dict[str, Any]:
    """Every unit not finished yet, in order; then the report."""
    from cifar_study.stages import build_quick_tables

    seeds = study.settings.paired_seeds
    if study.settings.table_seconds_per_key is not None:
        study.unit("tables", lambda: build_quick_tables(study))
    for job in PAIRED_SEARCHES:
        study.unit(f"search/{job.name}", lambda job=job: run_search(study, job))
    for index, job in enumerate(PAIRED_SEARCHES):
        study.unit(f"match/{job.name}",
                   lambda name=job.name, seed=1000 * (index + 1): match(study, name, seed))
    arch_paths: dict[str, str] = {}
    for job in PAIRED_SEARCHES:
        arch_paths[job.name] = study.state.result(f"search/{job.name}")["arch_path"]
        arch_paths.update(study.state.result(f"match/{job.name}")["arch_paths"])
    first = {training_unit(name, seeds[0], seeds[0]): (arch_paths[name], seeds[0])
             for job in PAIRED_SEARCHES
             for name in [job.name, *study.state.result(f"match/{job.name}")["random"]]}
    train_all(study, first)
    later = {training_unit(name, seed, seeds[0]): (arch_paths[name], seed)
             for job in PAIRED_SEARCHES
             for name in (job.name, best_rival(study.state.data["units"], job.name, seeds[0]))
             for seed in seeds[1:]}
    train_all(study, later)
    return write_paired_report(study)


def paired_differences(searched: list[float], rival: list[float]) -> dict[str, Any]:
    """``d_s = searched_s - rival_s`` per seed, their mean, sample std (n - 1) and range; the mean
    over the seeds after the first (where the rival was not chosen)."""
    differences = [a - b for a, b in zip(searched, rival, strict=True)]
    later = differences[1:]
    return {"differences": differences, "mean": statistics.fmean(differences),
            "std": statistics.stdev(differences) if len(differences) > 1 else None,
            "min": min(differences), "max": max(differences),
            "mean_after_selection": statistics.fmean(later) if later else None,
            "searched_better": sum(d > 0 for d in differences)}


def paired_results(state: dict[str, Any], seeds: tuple[int, ...]) -> dict[str, Any]:
    """Per search: the search's convergence and latency, every rival's first-seed accuracy, and the
    searched net against the best rival seed by seed."""
    units = state["units"]

    def top1(name: str, seed: int) -> float:
        return units[training_unit(name, seed, seeds[0])]["result"]["test_top1"]

    out = {}
    for job in PAIRED_SEARCHES:
        search = units[f"search/{job.name}"]["result"]
        matched = units[f"match/{job.name}"]["result"]
        first = {name: top1(name, seeds[0]) for name in [job.name, *matched["random"]]}
        rival = best_rival(units, job.name, seeds[0])
        searched_runs = [top1(job.name, seed) for seed in seeds]
        rival_runs = [top1(rival, seed) for seed in seeds]
        nets = matched["nets"]
        out[job.name] = {
            "target_ms": requested_target(search), "convergence": search.get("convergence") or {},
            "collapsed": bool((search.get("convergence") or {}).get("collapse")),
            "searched_latency_ms": nets["searched"]["latency_ms"],
            "rival": rival, "rival_latency_ms": nets[rival]["latency_ms"],
            "first_seed_top1": first, "first_seed_rank": rank_descending(first)[job.name],
            "searched_top1": searched_runs, "rival_top1": rival_runs,
            "paired": paired_differences(searched_runs, rival_runs),
            "macs_m": {"searched": nets["searched"]["macs_m"], "rival": nets[rival]["macs_m"]},
            "search_wall_seconds": search["wall_seconds"], "weight_steps": search["weight_steps"],
            "inherited_test_accuracy": search.get("test_accuracy"),
        }
    return out


def collect_paired(study: Study) -> dict[str, Any]:
    """Everything the paired report needs, from the state alone."""
    units = study.state.data["units"]
    finished = [entry["finished"] for entry in units.values()]
    return {"study": "CIFAR-10 paired study (issue 16, part 4)", "mode": study.settings.mode,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
            "settings": asdict(study.settings), "data": {"spec": study.data, "search": study.search_data,
                                                        "train": study.train_data},
            "latency_tables": latency_tables(), "parallel_trainings": study.jobs,
            "searches": paired_results(study.state.data, study.settings.paired_seeds),
            "unit_seconds": {name: entry["seconds"] for name, entry in units.items()},
            "units_finished": [min(finished), max(finished)] if finished else None,
            "unit_commits": sorted({entry.get("commit") or "not recorded" for entry in units.values()}),
            "commands": study.state.data["commands"]}


def render_paired(results: dict[str, Any]) -> str:
    """The fragment for docs/RESULTS.md."""
    s = results["settings"]
    seeds = s["paired_seeds"]
    taken = sorted({r["convergence"].get("arch_steps") for r in results["searches"].values()} - {None})
    arch_steps = " / ".join(map(str, taken)) or "?"
    quick = ("**Quick mode: a plumbing check (tiny data, 1 epoch); the numbers say nothing about the "
             "method.**\n\n" if s["mode"] != "paired" else "")
    lines = [
        f"## CIFAR-10 paired study ({s['mode']} mode)", "", *([quick.rstrip(), ""] if quick else []),
        f"Units finished {run_period(results)} UTC on {results['machine']['cpu']} "
        f"({results['machine']['cores']} cores); units run at commit "
        f"{', '.join(results.get('unit_commits') or ['not recorded'])}, report written at commit "
        f"{results['machine']['commit']}; "
        f"`python benchmarks/study_cifar.py --paired{' --quick' if quick else ''}`.",
        "",
        f"- **Searches**: the study space (section 3-5's), {s['search_warmup_epochs']} warm-up + "
        f"{s['search_epochs']} search epochs of {s['search_steps_per_epoch']} weight steps, one "
        "architecture step per weight step from the second search epoch on (`arch.skip_first_epoch`; "
        f"{arch_steps} steps taken), `{' '.join(s['arch_args'])}`, "
        "`--binary-mode two`, band mode (+-5 %): the demo recipe's converged architecture settings on "
        f"{s['search_limit_per_class']} CIFAR-10 images per class.",
        f"- **Rivals**: {s['random_nets']} random nets of the study space measured within +-5 % of the "
        "searched net's latency (as in section 3), each trained once with seed "
        f"{seeds[0]}; the most accurate there is the **best random rival**. The searched net and that "
        f"rival are then trained with seeds {', '.join(map(str, seeds[1:]))} as well (same budget: "
        f"{s['train_epochs']} epochs on {s['train_limit_per_class']} images per class, last epoch's "
        "test top-1).",
        f"- **Paired difference** at seed s: d_s = top-1(searched, s) - top-1(rival, s). The rival was "
        f"picked on seed {seeds[0]}, which favours it there; the last column is the mean over the "
        "other seeds alone. *Supernet top-1*: the searched net's test accuracy with the supernet's "
        "weights (BN recalibrated) at the end of its search.",
        "",
    ]
    rows = []
    for name, r in results["searches"].items():
        c, p = r["convergence"], r["paired"]
        entropy = c.get("normalised_entropy")
        rows.append([
            name, f"{r['target_ms']:.2f}", f"{r['searched_latency_ms']:.2f} / {r['rival_latency_ms']:.2f}",
            "-" if entropy is None else f"{entropy:.2f}" + (" (collapsed)" if r["collapsed"] else ""),
            "-" if r.get("inherited_test_accuracy") is None else f"{100 * r['inherited_test_accuracy']:.1f}",
            f"{r['first_seed_rank']} of {len(r['first_seed_top1'])}",
            " / ".join(f"{v:.2f}" for v in r["searched_top1"]),
            f"{r['rival']}: " + " / ".join(f"{v:.2f}" for v in r["rival_top1"]),
            " / ".join(f"{d:+.2f}" for d in p["differences"]),
            f"**{p['mean']:+.2f}** +- {p['std']:.2f}" if p["std"] is not None else f"{p['mean']:+.2f}",
            "-" if p["mean_after_selection"] is None else f"{p['mean_after_selection']:+.2f}"])
    lines.append(markdown_table(
        ["search", "target ms", "latency ms (searched / rival)", "norm. entropy",
         "supernet top-1 %", "rank at seed "
         f"{seeds[0]}", f"searched top-1 (seeds {', '.join(map(str, seeds))})", "best random rival top-1",
         "d_s", "mean d +- std", "mean d, later seeds"], rows))
    lines.append("")
    lines += [paired_reading(name, r, seeds) for name, r in results["searches"].items()]
    return "\n".join(lines) + "\n"


def paired_reading(name: str, r: dict[str, Any], seeds: list[int]) -> str:
    """One plain sentence per search: better, worse or within the spread."""
    p = r["paired"]
    spread = p["std"] or 0.0
    if p["min"] > 0:
        verdict = "the searched net is better at every seed"
    elif p["max"] < 0:
        verdict = ("the searched net is **worse** at every seed: the search did not beat a random net "
                   "of equal latency")
    else:
        verdict = ("the differences do not share one sign: the searched net is **not** shown better than "
                   "the best random net of equal latency")
    return (f"- `{name}`: mean paired difference {p['mean']:+.2f} points (std {spread:.2f} over "
            f"{len(seeds)} seeds, searched better at {p['searched_better']} of {len(seeds)}); {verdict}.")


def write_paired_report(study: Study) -> dict[str, Any]:
    """``study_paired.json`` and ``study_paired.md`` under ``benchmarks/results/study/<mode>/``."""
    from proxylessnas.runtime.atomic import write_json_atomic

    results = collect_paired(study)
    folder = RESULTS / study.settings.mode
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "study_paired.json", results)
    (folder / "study_paired.md").write_text(render_paired(results))
    study.log(f"wrote {study.show_path(folder)}/study_paired.json, study_paired.md")
    return results
