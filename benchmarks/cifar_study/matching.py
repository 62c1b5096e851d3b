"""Matching (item 3): the baselines and random architectures of the study space measured with a
searched net in one interleaved session, the random ones kept within +-5 % of it, then all the
chosen nets timed together once more (a confirmation session whose numbers are reported).

The random ones are drawn with per-layer probabilities ``q(op) ~ exp(-beta * table cost of op)``,
beta solved so that the expected table cost is the searched net's (:func:`tilt_for_mean`)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from typing import Any

from cifar_study.helpers import accept_matched, closest_to, relative_gap
from cifar_study.nets import baseline_nets, macs_params, study_space
from cifar_study.runner import Study, UnitFailed
from cifar_study.settings import StudySettings


def tilt_weights(costs: Sequence[float], beta: float) -> list[float]:
    """Unnormalised ``q(j) ~ exp(-beta c_j)`` of one layer (shifted by the cheapest: no overflow)."""
    low = min(costs)
    return [math.exp(-beta * (c - low)) for c in costs]


def tilted_mean(fixed: float, layer_costs: Sequence[Sequence[float]], beta: float) -> float:
    """Expected cost ``fixed + sum_l sum_j q_lj c_lj`` under ``q_l = softmax(-beta c_l)``."""
    total = fixed
    for costs in layer_costs:
        weights = tilt_weights(costs, beta)
        total += sum(w * c for w, c in zip(weights, costs)) / sum(weights)
    return total


def tilt_for_mean(fixed: float, layer_costs: Sequence[Sequence[float]], target: float,
                  iterations: int = 200) -> float:
    """The beta whose tilted distribution has expected cost ``target`` (bisection; the mean falls
    as beta grows). A target beyond the reachable range gives the extreme beta (+-1e3 / cost scale)."""
    scale = max(max(c) - min(c) for c in layer_costs) or 1.0
    low, high = -1e3 / scale, 1e3 / scale
    for _ in range(iterations):
        middle = (low + high) / 2
        if tilted_mean(fixed, layer_costs, middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def sample_tilted(layer_costs: Sequence[Sequence[float]], beta: float, count: int,
                  seed: int) -> list[list[int]]:
    """``count`` architectures (candidate index per layer) drawn from ``q_l(j) ~ exp(-beta c_lj)``.

    ``q(arch) ~ exp(-beta * cost(arch))``: every architecture of the same total cost is equally
    likely, so those kept in a narrow cost window are a uniform sample of the space's architectures
    of that cost, also far from the space's typical cost where uniform sampling (beta = 0) finds
    almost none."""
    rng = random.Random(seed)
    layers = [tilt_weights(costs, beta) for costs in layer_costs]
    return [[rng.choices(range(len(w)), weights=w)[0] for w in layers] for _ in range(count)]


def time_session(nets: list[tuple[str, Any, Any]], settings: StudySettings,
                 seed: int) -> dict[str, dict[str, float]]:
    """Median, p10, p90 (ms) of each (name, space, arch), timed in one interleaved session."""
    import torch

    from proxylessnas import build_net
    from proxylessnas.hardware.measure import Backend, measure_interleaved, prepare_runner

    torch.set_num_threads(1)
    backend = Backend("torch", "cpu", 1, 1)
    runners = [prepare_runner(build_net(space, arch), (1, 3, 32, 32), backend, seed=i)
               for i, (_, space, arch) in enumerate(nets)]
    stats = measure_interleaved(runners, warmup=10, rounds=settings.session_rounds,
                                per_round=settings.session_per_round, threads=1, seed=seed)
    return {name: {"median": s.median, "p10": s.p10, "p90": s.p90, "count": s.count}
            for (name, _, _), s in zip(nets, stats)}


def match(study: Study, search_name: str, seed: int) -> dict[str, Any]:
    """The matched nets of one search: their arch files (``<work>/archs``) and numbers."""
    from proxylessnas import Arch
    from proxylessnas.hardware.targets import get_cost_model
    from proxylessnas.runtime.atomic import write_json_atomic

    s = study.settings
    space = study_space()
    searched = Arch.load(study.search_dir(search_name) / "arch.json", space)
    baselines = baseline_nets(s.zoo_widths, s.backbone_widths)
    # random archs of the searched net's predicted cost: tilted sampling, then a +-prefilter window
    cost = get_cost_model("cpu", space, progress=False)
    reference = cost.arch_cost(space, searched)
    fixed, vectors = cost.candidate_costs(space)
    layer_costs = [[float(c) for c in vector] for vector in vectors]
    beta = tilt_for_mean(fixed, layer_costs, reference)
    pool, seen = [], {json.dumps(searched.to_dict()["choices"], sort_keys=True)}
    for index, choice in enumerate(sample_tilted(layer_costs, beta, s.random_pool, seed)):
        ops = [layer.candidates[i] for layer, i in zip(space.searched_layers, choice)]
        arch = Arch.from_ops(space, ops)
        key = json.dumps(arch.to_dict()["choices"], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        if abs(relative_gap(cost.arch_cost(space, arch), reference)) <= s.random_prefilter:
            pool.append((f"sample{index}", arch))
    sessions, accepted = [], []
    cursor = 0
    while len(accepted) < s.random_nets and len(sessions) < s.random_max_sessions and cursor < len(pool):
        batch = pool[cursor:cursor + s.random_per_session]
        cursor += len(batch)
        widths_now = [] if sessions else [(n, sp, a) for n, (sp, a) in baselines.items()]
        nets = [("searched", space, searched), *widths_now, *[(n, space, a) for n, a in batch]]
        timed = time_session(nets, s, seed=seed + len(sessions))
        sessions.append(timed)
        base = timed["searched"]["median"]
        accepted += accept_matched([(n, timed[n]["median"]) for n, _ in batch], base, s.match_tolerance,
                                   s.random_nets - len(accepted))
    if len(accepted) < s.random_nets:
        raise UnitFailed(f"matching {search_name}: only {len(accepted)} of {s.random_nets} random "
                         f"architectures measured within +-{s.match_tolerance:.0%} after "
                         f"{len(sessions)} sessions; raise random_pool or random_max_sessions")
    first = sessions[0]
    baseline_latency = {n: first[n]["median"] for n in baselines}
    chosen_baseline = closest_to(baseline_latency, first["searched"]["median"])
    by_name = dict(pool)
    random_names = [f"{search_name}-random{i + 1}" for i in range(len(accepted))]
    for name, sample in zip(random_names, accepted):
        write_json_atomic(study.arch_path(name), by_name[sample].to_dict())
    mbv2_name = f"{search_name}-{chosen_baseline}"
    write_json_atomic(study.arch_path(mbv2_name), baselines[chosen_baseline][1].to_dict())
    # confirmation: the nets to be trained, timed together once more; these numbers are reported
    final_nets = [("searched", space, searched), (mbv2_name, *baselines[chosen_baseline]),
                  *[(n, space, by_name[sample]) for n, sample in zip(random_names, accepted)]]
    confirmation = time_session(final_nets, s, seed=seed + 100)
    nets = {}
    for name, net_space, arch in final_nets:
        macs, params = macs_params(net_space, arch)
        nets[name] = {"latency_ms": confirmation[name]["median"], "p10": confirmation[name]["p10"],
                      "p90": confirmation[name]["p90"], "macs_m": macs, "params_m": params,
                      "choices": {k: v.token for k, v in arch.choices.items()}}
    return {"searched_table_cost": reference, "tilt_beta": beta, "pool_size": len(pool),
            "candidates_timed": cursor,
            "sessions": sessions, "baseline_latency": baseline_latency,
            "searched_latency_first_session": first["searched"]["median"],
            "mobilenet_v2": mbv2_name, "random": random_names,
            "random_samples": dict(zip(random_names, accepted)), "nets": nets,
            "arch_paths": {n: study.show_path(study.arch_path(n)) for n in [mbv2_name, *random_names]}}
