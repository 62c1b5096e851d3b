"""The final phase of a search: derive, recalibrate BatchNorm, test, measure, summarise.

1. the architecture to derive (:mod:`proxylessnas.search.selection`): the argmax, or in a target
   mode the most probable one inside the band if the argmax misses it; on measured hardware
   the most probable of a few timed candidates that meets the target when measured;
2. the derived net with the supernet's weights, BatchNorm statistics re-estimated on
   ``run.bn_recalibration_batches`` training batches, its test accuracy;
3. its latency, predicted (table units) and measured (ms, measured hardware only);
4. arch.json (with those numbers) and the summary (:func:`format_summary` prints it).

Latency keys: ``predicted_latency``, ``cheapest_latency``, ``most_expensive_latency`` and
``target_latency_table`` are in the cost model's unit (``unit``); ``measured_latency`` and
``target_latency_ms`` (the target as requested; null where nothing is measured) in ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from proxylessnas.data import BatchIterator
from proxylessnas.search.build import SearchData, SearchParts
from proxylessnas.search.calibration import is_measured, measure_net_latency, search_gauge
from proxylessnas.search.config import SearchConfig
from proxylessnas.search.convergence import (
    collapse_warning,
    convergence_summary,
    convergence_warning,
    format_convergence,
)
from proxylessnas.search.selection import select_architecture, select_measured
from proxylessnas.space import Arch
from proxylessnas.space.ops import is_parameter_free
from proxylessnas.train.bn_recalibration import recalibrate_bn


def finish_search(run_dir: Path, config: SearchConfig, data: SearchData, parts: SearchParts,
                  device: torch.device, metrics: list[dict]) -> dict[str, Any]:
    """Derive, recalibrate BN, test, measure; write the final arch.json; return the summary (with
    the derived net's weights under ``_child_state_dict``, for the final checkpoint)."""
    from proxylessnas.train.loops import evaluate

    supernet, profile, target = parts.supernet, parts.profile, parts.target
    space = supernet.space
    indices, selection = select_architecture(supernet.arch_parameters(), profile, target)
    measured_candidates = None
    gauge = search_gauge(target, space, config) if is_measured(config) else None
    if target.mode != "penalty" and is_measured(config):
        indices, selection, measured_candidates = select_measured(supernet.arch_parameters(), space, target,
                                                                  config, gauge)
    layers = space.searched_layers
    probs = [p.detach().cpu() for p in supernet.probs()]
    predicted = profile.cost_of(indices)
    chosen = Arch.from_ops(space, [layer.candidates[i] for layer, i in zip(layers, indices)])
    derived = supernet.derive(chosen, inherit=True)
    recalibration = BatchIterator.for_dataset(data.dataset, data.train_part, config.data.batch_size,
                                              augment=False, seed=config.run.seed + 3, device=device)
    recalibrate_bn(derived, recalibration.epoch(0), config.run.bn_recalibration_batches)
    test = BatchIterator.for_dataset(data.dataset, data.dataset.test, config.data.eval_batch_size,
                                     augment=False, shuffle=False, device=device)
    test_accuracy = evaluate(derived, test, data.dataset.num_classes).top1 / 100.0
    derived_cpu = derived.to("cpu") if config.hardware.target != "cuda" else derived
    measured = measure_net_latency(derived_cpu, config, space, gauge)
    choices = {layer.label: layer.candidates[i].token for layer, i in zip(layers, indices)}
    target_ms = target.requested if is_measured(config) else None
    metadata = {
        "predicted_latency": predicted, "measured_latency": measured, "unit": profile.unit,
        "target_latency_ms": target_ms, "target_latency_table": target.table,
        "latency_mode": target.mode, "target_accepted": target.accepts(predicted),
        "selection": selection, "measured_candidates": measured_candidates,
        "test_accuracy": test_accuracy, "hardware": config.hardware.target,
        "dataset": config.data.dataset, "strategy": config.search.strategy,
        "probabilities": {layer.label: [round(float(v), 6) for v in p] for layer, p in zip(layers, probs)},
    }
    arch = Arch.from_ops(space, list(choices.values()), metadata)
    arch.save(run_dir / "arch.json")
    convergence = convergence_summary(metrics)
    free = {op.token for d in space.decisions for op in d.candidates if is_parameter_free(op)}
    convergence["collapse"] = collapse_warning(choices, free)
    convergence["warning"] = convergence_warning(
        convergence, epochs=config.search.epochs, update_every=config.arch.update_every,
        arch_lr=config.arch.lr, warmup_epochs=config.search.warmup_epochs, latency_mode=config.latency.mode)
    calibration = target.calibration
    return {
        "run_dir": str(run_dir), "arch": arch.to_dict(), "choices": choices,
        "predicted_latency": predicted, "measured_latency": measured, "unit": profile.unit,
        "target_latency_ms": target_ms, "target_latency_table": target.table,
        "calibration": None if calibration is None else list(calibration),
        "predicted_latency_calibrated": None if calibration is None else target.to_measured(predicted),
        "latency_mode": target.mode, "cheapest_latency": profile.cheapest,
        "most_expensive_latency": profile.most_expensive,
        "target_accepted": target.accepts(predicted), "selection": selection,
        "measured_within_tolerance": (None if measured is None or target.mode == "penalty"
                                      else target.measured_band.meets(measured)),
        "speed_factors": None if gauge is None else gauge.factors,
        "test_accuracy": test_accuracy, "bn_recalibration_batches": config.run.bn_recalibration_batches,
        "epochs": len(metrics),
        "convergence": convergence,
        "_child_state_dict": {k: v.detach().cpu() for k, v in derived.state_dict().items()},
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run report: op per layer, latencies, accuracy, convergence, files; a convergence
    warning, when there is one, as the last lines."""
    unit = summary["unit"]
    lines = ["", "chosen architecture:"]
    width = max(len(label) for label in summary["choices"])
    for label, op in summary["choices"].items():
        lines.append(f"  {label:<{width}}  {op}")
    measured = summary["measured_latency"]
    target = summary["target_latency_ms"]
    if target is None:
        target = summary["target_latency_table"]
    lines.append(f"latency: predicted {summary['predicted_latency']:.4g} {unit}, measured "
                 + (f"{measured:.4g} ms" if measured is not None else "n/a (no measurement on this target)")
                 + f"; target {target:.4g} {unit} ({summary['latency_mode']}), "
                 f"space spans {summary['cheapest_latency']:.4g}-"
                 f"{summary['most_expensive_latency']:.4g} {unit}")
    if summary.get("calibration"):
        slope, intercept = summary["calibration"]
        low = slope * summary["cheapest_latency"] + intercept
        high = slope * summary["most_expensive_latency"] + intercept
        lines.append(f"calibration: measured = {slope:.3f} * table + {intercept:.3f} ms (space ~{low:.4g}-"
                     f"{high:.4g} ms measured); target in table units "
                     f"{summary['target_latency_table']:.4g}; calibrated prediction "
                     f"{summary['predicted_latency_calibrated']:.4g} ms")
    if summary.get("speed_factors"):
        factors = ", ".join(f"{f:.3f}" for f in summary["speed_factors"])
        lines.append(f"machine speed against the calibration session: {factors} (slower > 1; divided out)")
    if summary.get("measured_within_tolerance") is not None:
        verdict = "within" if summary["measured_within_tolerance"] else "NOT within"
        lines.append(f"measured latency is {verdict} the tolerance of the target")
    if summary["selection"] != "argmax":
        lines.append(f"selection: {summary['selection']}")
    lines.append(f"test accuracy with inherited weights after BN recalibration: "
                 f"{100 * summary['test_accuracy']:.2f}%")
    convergence = summary.get("convergence")
    if convergence:
        lines.append(format_convergence(convergence))
    for note in summary.get("notes", []):
        lines.append(note)
    lines.append(f"run directory {summary['run_dir']}: {', '.join(summary.get('files', []))}")
    for key in ("collapse", "warning"):
        if convergence and convergence.get(key):
            lines.extend(convergence[key].splitlines())
    return "\n".join(lines)
