"""The report's text (the fragment for docs/RESULTS.md): data, budget, the tables of items 3-5,
their readings and the commands."""

from __future__ import annotations

from typing import Any

from cifar_study.helpers import duration, markdown_table, ops_differ, requested_target
from cifar_study.nets import arch_character
from cifar_study.results import run_period
from cifar_study.settings import SPECIALISED, STRATEGY_RUNS


def _top1(trainings: dict[str, Any], name: str) -> str:
    return f"{trainings[name]['test_top1']:.2f}" if name in trainings else "-"


def render_markdown(results: dict[str, Any]) -> str:
    """The fragment for docs/RESULTS.md: data, budget, tables, commands and readings."""
    s = results["settings"]
    m = results["machine"]
    mode_note = ("**Quick mode: a plumbing check (tiny data, 1 epoch, fast latency tables); the numbers "
                 "below say nothing about the methods.**\n\n" if s["mode"] == "quick" else "")
    weight_steps = (s["search_warmup_epochs"] + s["search_epochs"]) * s["search_steps_per_epoch"]
    spread = results["seed_spread"]
    lines = [
        f"## CIFAR-10 study ({s['mode']} mode)", "", *([mode_note.rstrip(), ""] if mode_note else []),
        f"Units finished {run_period(results)} UTC on {m['cpu']} ({m['cores']} cores), torch "
        f"{m['torch']}, ONNX Runtime {m['onnxruntime']}, proxylessnas {m['proxylessnas']} (units run at "
        f"commit {', '.join(results.get('unit_commits') or ['not recorded'])}; report written at commit "
        f"{m['commit']}, {results['date'][:16].replace('T', ' ')} UTC); "
        f"`python benchmarks/study_cifar.py --{s['mode']}`.",
        "",
        "- **Data**: CIFAR-10 as the JPEG (quality 75) copy in `../shared/data/cifar10` (an image-folder "
        "tree), not the original PNG/pickle release; JPEG artefacts cost some accuracy. Searches: "
        f"{s['search_limit_per_class']} images per class "
        f"({10 * s['search_limit_per_class'] - s['search_valid_size']} for the weights, "
        f"{s['search_valid_size']} for the architecture steps) and at most that many "
        f"test images per class. Trainings: {s['train_limit_per_class']} training and "
        f"{min(1000, s['train_limit_per_class'])} test images per class.",
        f"- **Training budget** (identical for every net): {s['train_epochs']} epoch(s), batch "
        f"{s['train_batch_size']}, the CIFAR recipe (SGD Nesterov, lr 0.1, 1 warm-up epoch then cosine, "
        "label smoothing 0.1, weight decay 5e-4), from scratch, seed 0; the number reported is the "
        "**last epoch's** test top-1. One torch thread per process; trainings run "
        f"{results['parallel_trainings']} at a time.",
        f"- **Searches**: space `proxyless-cifar` at width 0.5, depths (2, 2, 2, 2, 2, 1) (11 searched "
        f"blocks); {s['search_warmup_epochs']} warm-up + {s['search_epochs']} search epoch(s) of "
        f"{s['search_steps_per_epoch']} weight steps (batch {s['search_batch_size']}; {weight_steps} "
        f"weight steps), band mode (+-5 %), {s['search_calibration_nets']} calibration nets, seed 0, one "
        "thread. Latency: torch eager, CPU, batch 1, one thread, thread-CPU clock. Tables: "
        + "; ".join(f"{name} {t['keys']} blocks, built {str(t['date'])[:16]} "
                    f"({(t.get('method') or {}).get('seconds_per_key', '?')} s per block)"
                    for name, t in results.get("latency_tables", {}).items()) + ".",
        "",
    ]
    lines += _item3_markdown(results)
    lines += _item4_markdown(results)
    lines += _item5_markdown(results)
    if spread["range"] is not None:
        lines += [f"Seed-to-seed spread of one net (the low searched net trained with seeds "
                  f"{', '.join(map(str, spread['seeds']))}): top-1 "
                  f"{', '.join(f'{v:.2f}' for v in spread['test_top1'])} %, range {spread['range']:.2f} "
                  "points: accuracy gaps smaller than this are noise.", ""]
    lines += ["### Commands", "", "```"]
    lines += [entry["command"] for entry in results["commands"]
              if not entry["unit"].startswith("measure-") or entry["unit"].endswith("-0")]
    lines += ["```", "", f"(`latency measure` passes 1..{s['cross_passes'] - 1} repeat pass 0's commands "
              "with other `--json` files; the matching sessions and MACs use the Python API, see "
              "`benchmarks/study_cifar.py`.)" if s["cross_passes"] > 1 else "", ""]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def _item3_markdown(results: dict[str, Any]) -> list[str]:
    lines = ["### Accuracy at equal latency (item 3)", "",
             "Each searched net (gradient, `full_v2`) against the MobileNetV2 net whose measured latency is "
             "closest, of two families on a grid of width multipliers: `mobilenet_v2_w<w>`, the zoo net's "
             "CIFAR-size variant (stride-1 stem; the fixed k3 e1 block, then 16 k3 e6 blocks in stages of "
             "2-3-4-3-3-1), and `mbv2_k3e6_w<w>`, MobileNetV2's block (k3 e6) in all 11 searched blocks "
             "of the study backbone (stages of 2-2-2-2-2-1; the study space itself is width 0.5), "
             f"and against {results['settings']['random_nets']} random architectures of the study space "
             "measured within +-5 % of it. The random ones are drawn with per-layer probabilities "
             "q(op) ~ exp(-beta * table cost of op), beta solved so that the expected table cost is the "
             "searched net's (every architecture of one total cost is then equally likely; beta = 0 is "
             "uniform sampling, which finds almost none far from the space's typical cost), kept within "
             f"+-{results['settings']['random_prefilter']:.0%} of its table cost, timed with it in "
             "random order; the first ones within +-5 % are trained. Latencies: medians from one "
             "interleaved session of the nets of a table (a confirmation session after the matching one).",
             ""]
    spread = results["seed_spread"]["range"]
    for search, item in results["item3"].items():
        match = results["matching"][search]
        lines += [f"**Target {item['target_ms']:.3g} ms** (`{search}`): MobileNetV2 nets timed with the "
                  f"searched one ({match['searched_latency_first_session']:.2f} ms there): "
                  + ", ".join(f"{name} {latency:.2f}" for name, latency in match["baseline_latency"].items())
                  + f" ms; {match['candidates_timed']} random candidates timed (of {match['pool_size']} in "
                  f"the table window; beta {match.get('tilt_beta', 0.0):.2f} per ms).", ""]
        rows = sorted(item["rows"], key=lambda r: -(r["test_top1"] or -1))
        table = [[f"**{r['name']}**" if r["kind"] == "searched" else r["name"], r["kind"],
                  f"{r['latency_ms']:.3f} ({r['p10']:.2f}-{r['p90']:.2f})", f"{100 * r['gap']:+.1f} %",
                  f"{r['macs_m']:.2f}", f"{r['params_m']:.3f}",
                  "-" if r["test_top1"] is None else f"{r['test_top1']:.2f}",
                  "-" if r["test_top5"] is None else f"{r['test_top5']:.2f}", r["rank"] or "-"]
                 for r in rows]
        lines += [markdown_table(["net", "kind", "latency ms (p10-p90)", "vs searched", "MMACs", "M params",
                                  "top-1 %", "top-5 %", "rank"], table), ""]
        verdict = _item3_verdict(item, spread)
        lines += [verdict, ""]
    lines += ["![accuracy vs latency](accuracy_vs_latency.png)", ""]
    return lines


def _item3_verdict(item: dict[str, Any], spread: float | None) -> str:
    rows = [r for r in item["rows"] if r["test_top1"] is not None]
    if not rows:
        return "Reading: not trained yet."
    searched = next(r for r in rows if r["kind"] == "searched")
    others = [r for r in rows if r["kind"] != "searched"]
    best_other = max(others, key=lambda r: r["test_top1"])
    margin = searched["test_top1"] - best_other["test_top1"]
    unmatched = [r["name"] for r in item["rows"] if abs(r["gap"]) > 0.05]
    text = (f"Reading: the searched net ranks {searched['rank']} of {len(rows)} "
            f"({searched['test_top1']:.2f} % against the best other, {best_other['name']}, "
            f"{best_other['test_top1']:.2f} %: {margin:+.2f} points).")
    if spread is not None:
        text += (f" The seed-to-seed range of one net is {spread:.2f} points, so the gap is "
                 + ("larger than seed noise." if abs(margin) > spread else "within seed noise."))
    if item.get("final_entropy") is not None:
        text += (f" The search ended at entropy {item['final_entropy']:.2f} of the architecture distribution "
                 f"(uniform: {item['uniform_entropy']:.2f})"
                 + (": the probabilities barely left uniform, so the derived net owes more to the "
                    "latency band than to learned accuracy preferences."
                    if item["final_entropy"] > 0.9 * item["uniform_entropy"] else "."))
    if item["searched_is_most_accurate"]:
        text += " The claim (most accurate at equal latency) holds here."
    else:
        text += (" The claim (most accurate at equal latency) does **not** hold here. Likely causes: "
                 f"{best_other['name']} has {best_other['macs_m'] / searched['macs_m']:.2f}x the searched "
                 f"net's MACs and {best_other['params_m'] / searched['params_m']:.2f}x its parameters at "
                 "this latency (eager batch-1 latency here is dominated by per-block overhead, not MACs, "
                 "and the search trades accuracy for latency only through a short supernet training); "
                 "the search is short (a few hundred weight steps on a few thousand images), and the "
                 "training budget is short too, so nets of equal latency are ranked by how fast they "
                 "learn early, with one seed.")
    if unmatched:
        text += (f" Not matched within +-5 % in the confirmation session: {', '.join(unmatched)} "
                 "(session-to-session noise; see the p10-p90 column).")
    off_target = searched["latency_ms"] / item["target_ms"] - 1
    if abs(off_target) > 0.05:
        text += (f" In this session the searched net measured {searched['latency_ms']:.2f} ms, "
                 f"{100 * off_target:+.0f} % from its T: T in ms comes from the search's calibration "
                 "session, and this machine's speed moves by 10 % and more between sessions minutes apart "
                 "(searches with `latency.gauge`, the default since this run, keep the calibration "
                 "session's speed scale up to their final measurement).")
    return text


def _item4_markdown(results: dict[str, Any]) -> list[str]:
    searches, cross, trainings = results["searches"], results["cross"], results["trainings"]
    columns = {"torch": "torch eager CPU (ms)", "onnxruntime": "ONNX Runtime CPU (ms)", "macs_m": "MMACs"}
    best = {key: min(SPECIALISED, key=lambda n: _cross_value(cross[n], key)) for key in columns}
    rows = []
    for name in SPECIALISED:
        search = searches[name]
        cells = [f"`{search['job']['hardware']}` (T = {requested_target(search):.3g} {search['unit']})"]
        for key in columns:
            value = _cross_value(cross[name], key)
            text = f"{value:.2f}" if key == "macs_m" else f"{value:.3f}"
            cells.append(f"**{text}**" if best[key] == name else text)
        blocks, kernel, expand = arch_character(search["choices"])
        cells += [f"{cross[name]['params_m']:.3f}", f"{blocks} / {kernel:.1f} / {expand:.1f}",
                  _top1(trainings, name)]
        rows.append(cells)
    own = {"cpu-low": "torch", "onnxruntime-low": "onnxruntime", "flops-low": "macs_m"}
    wins = [name for name in SPECIALISED if best[own[name]] == name]
    pairs = [(a, b) for i, a in enumerate(SPECIALISED) for b in SPECIALISED[i + 1:]]
    differ = ", ".join(f"{a} vs {b}: {ops_differ(searches[a]['choices'], searches[b]['choices'])}"
                       for a, b in pairs)
    position = results["settings"]["target_positions"][0]
    lines = ["### Hardware specialisation (item 4)", "",
             f"Three searches at the same relative target ({position:.0%} of the way from the cheapest to "
             "the most expensive net of each cost model): torch eager CPU (`--hardware cpu`), ONNX Runtime "
             "CPU (`--hardware onnxruntime`), MACs (`--hardware flops`). Each found net measured on every "
             "target (`proxyless latency measure`, median over "
             f"{results['settings']['cross_passes']} pass(es); MACs analytic) and trained with the budget "
             "above. Bold: the best (lowest) in each column.", "",
             markdown_table(["searched for", *columns.values(), "M params",
                             "blocks kept / mean kernel / mean expand", "top-1 %"], rows), "",
             f"Blocks (of 11) that differ: {differ}.", "",
             _item4_verdict(wins, searches), "",
             "![architectures found per target](specialisation_diagrams.png)", ""]
    return lines


def _item4_verdict(wins: list[str], searches: dict[str, Any]) -> str:
    """Do the specialised nets differ, and does each win on its own target?"""
    identical = [(a, b) for i, a in enumerate(SPECIALISED) for b in SPECIALISED[i + 1:]
                 if ops_differ(searches[a]["choices"], searches[b]["choices"]) == 0]
    text = "Reading: " + ("the three searches found three different nets. " if not identical else
                          "identical nets for " + ", ".join(f"{a} and {b}" for a, b in identical) + ". ")
    if len(wins) == len(SPECIALISED):
        return text + "Each specialised net is the cheapest on its own target, as the paper reports."
    text += (f"{len(wins)} of {len(SPECIALISED)} nets are the cheapest on their own target"
             + (f" ({', '.join(wins)})" if wins else "") + ". ")
    return text + ("This departs from the paper. Likely causes: every search lands inside +-5 % of its own "
                   "T, so a net is not pushed below the others' latency on its target, only to its own T; "
                   "targets set at the same relative position of different cost models need not be equally "
                   "hard; and one latency measurement here varies by several per cent between sessions.")


def _cross_value(row: dict[str, Any], key: str) -> float:
    return row[key] if key == "macs_m" else row[key]["median"]


def _item5_markdown(results: dict[str, Any]) -> list[str]:
    searches, cross, trainings = results["searches"], results["cross"], results["trainings"]
    labels = {"cpu-low": "gradient, `full_v2`", "cpu-low-two": "gradient, `two`",
              "cpu-low-reinforce": "REINFORCE (8 samples per update, 1 update per 5 weight steps)"}
    rows = []
    for name in STRATEGY_RUNS:
        search = searches[name]
        within = search["measured_within_tolerance"]
        rows.append([labels[name], search["weight_steps"], duration(search["wall_seconds"])
                     + (" (resumed)" if search["resumed"] else ""),
                     f"{requested_target(search):.3f}", f"{search['measured_latency']:.3f}",
                     "yes" if within else "no", f"{cross[name]['torch']['median']:.3f}",
                     f"{100 * search['test_accuracy']:.2f}", _top1(trainings, name),
                     "-" if search.get("final_entropy") is None
                     else f"{search['final_entropy']:.2f} / {search['uniform_entropy']:.2f}"])
    # a resumed search's clock covers only its last part: not comparable
    times = {name: searches[name]["wall_seconds"] for name in STRATEGY_RUNS if not searches[name]["resumed"]}
    accuracies = {name: trainings[name]["test_top1"] for name in STRATEGY_RUNS if name in trainings}
    best = max(accuracies, key=accuracies.get) if accuracies else None
    fastest = min(times, key=times.get) if times else None
    fastest_text = f"{labels[fastest]} ({duration(times[fastest])})" if fastest else "-"
    if len(times) < len(STRATEGY_RUNS):
        fastest_text += " among the searches not resumed"
    return ["### Gradient against REINFORCE (item 5)", "",
            "Same target position, run as a user would run each strategy (each search's own "
            "calibration turns the position into T in ms, so T differs by the calibration noise), "
            "data, space and number of weight steps; gradient runs take one architecture "
            "step per weight step, REINFORCE one per 5 (each scoring 8 sampled architectures). Search "
            "wall time from the study's clock (the whole `proxyless search` process: data, calibration, "
            "search, final selection, BN recalibration, test, plots).", "",
            markdown_table(["strategy", "weight steps", "search wall time", "T (ms)",
                            "measured at the end of the search (ms)", "within +-5 %",
                            "measured again (ms)", "inherited-weights top-1 %", "trained top-1 %",
                            "final entropy / uniform"], rows), "",
            f"Reading: fastest search: {fastest_text}; most accurate after "
            f"training: {labels[best] + f' ({accuracies[best]:.2f} %)' if best else '-'}. The paper "
            "presents the gradient method as the memory-efficient way to search; its authors later said "
            "their main results came from the REINFORCE variant, the plain gradient with a latency "
            "penalty being slightly worse. With one seed and a short budget, accuracy differences within "
            "the seed spread below are not evidence either way.", ""]

