"""Why a gradient search does or does not converge: steps, logit movement, gradient signal, latency.

Runs one search (a shipped recipe plus ``key=value`` overrides) and records, at every
architecture step, the gradient on the logits of the cross-entropy part and of the latency part
of the architecture loss separately (``torch.autograd.grad`` on each, then the optimiser steps on
their sum: the search itself is unchanged). Reported:

- architecture steps taken, and how far the logits moved: ``max |alpha_end - alpha_start|`` and
  the mean over logits;
- the signal-to-noise ratio of the cross-entropy gradient per logit over the search phase,
  ``SNR_j = |mean_t g_tj| / std_t g_tj`` (median and 90th percentile over logits). With Adam and
  beta1 = 0 a logit drifts by about ``lr * SNR`` per step and diffuses by ``lr`` per sqrt(step);
- the size of the rest of the gradient (latency term, plus the entropy term where
  ``arch.entropy_weight`` is set) against the cross-entropy one (mean absolute value) and the
  lambda of the target controller;
- the final normalised entropy ``sum_d H(p_d) / sum_d ln K_d`` and the wall time.

    python benchmarks/search_diagnosis.py --config demo --name demo_default
    python benchmarks/search_diagnosis.py --config demo --name lr0.05 arch.lr=0.05 arch.update_every=1
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from proxylessnas.search import finish, strategies
from proxylessnas.search.config import load_config
from proxylessnas.search.run import run_search

RESULTS = Path(__file__).parent / "results" / "diagnosis"


class Recorder:
    """Patches ``GradientStrategy.arch_step`` to keep the two gradient parts of every step."""

    def __init__(self) -> None:
        self.ce: list[torch.Tensor] = []
        self.latency: list[torch.Tensor] = []
        self.weights: list[float] = []
        self.start: torch.Tensor | None = None

    def arch_step(self, strategy, images, labels, generator):
        supernet, latency = strategy.supernet, strategy.latency
        alphas = supernet.arch_parameters()
        if self.start is None:
            self.start = torch.cat([a.detach().flatten() for a in alphas]).clone()
        supernet.sample_arch_step(strategy.binary_mode, generator)
        logits = supernet(images)
        ce = F.cross_entropy(logits, labels)
        probs = supernet.probs()
        loss, details = latency.loss(ce, probs)
        loss = strategies.add_entropy_term(loss, details, probs, strategy.entropy_weight)
        strategies.check_finite("architecture loss", loss)
        ce_grads = torch.autograd.grad(ce, alphas, retain_graph=True)
        latency_grads = torch.autograd.grad(loss - ce, alphas, allow_unused=True)
        latency_grads = [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, latency_grads)]
        strategy.optimizer.zero_grad(set_to_none=True)
        for alpha, g_ce, g_lat in zip(alphas, ce_grads, latency_grads):
            alpha.grad = (g_ce + g_lat).detach()
        strategy.optimizer.step()
        supernet.finish_arch_step()
        latency.after_arch_step(alphas)
        self.ce.append(torch.cat([g.detach().flatten() for g in ce_grads]).double())
        self.latency.append(torch.cat([g.detach().flatten() for g in latency_grads]).double())
        self.weights.append(float(latency.weight) if latency.weight is not None else 0.0)
        details["arch_accuracy"] = float((logits.argmax(1) == labels).float().mean())
        return details


def normalised_entropy(probs: list[torch.Tensor]) -> float:
    h = sum(float(-(p * p.clamp_min(1e-30).log()).sum()) for p in probs)
    return h / sum(math.log(len(p)) for p in probs)


def report(recorder: Recorder, supernet_alphas: list[torch.Tensor], wall: float) -> dict:
    end = torch.cat([a.detach().flatten() for a in supernet_alphas]).double()
    moved = (end - recorder.start.double()).abs()
    ce = torch.stack(recorder.ce)
    latency = torch.stack(recorder.latency)
    snr = ce.mean(0).abs() / ce.std(0).clamp_min(1e-30)
    snr_sorted = sorted(snr.tolist())
    probs = [torch.softmax(a.detach().double(), 0) for a in supernet_alphas]
    return {
        "arch_steps": len(recorder.ce),
        "logit_move_max": float(moved.max()), "logit_move_mean": float(moved.mean()),
        "ce_grad_abs_mean": float(ce.abs().mean()),
        "latency_grad_abs_mean": float(latency.abs().mean()),
        "latency_to_ce": float(latency.abs().mean() / ce.abs().mean().clamp_min(1e-30)),
        "snr_median": statistics.median(snr_sorted),
        "snr_p90": snr_sorted[int(0.9 * (len(snr_sorted) - 1))],
        "lambda_first_last": [recorder.weights[0], recorder.weights[-1]] if recorder.weights else None,
        "normalised_entropy": normalised_entropy(probs),
        "mean_max_prob": statistics.fmean(float(p.max()) for p in probs),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="demo")
    parser.add_argument("--name", required=True, help="result file name (without .json)")
    parser.add_argument("--out-dir", default="/tmp/search_diagnosis", help="search run folders")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    out = Path(args.out_dir) / args.name
    config = load_config(args.config, [*args.overrides, f"run.out={out}", "run.progress=false",
                                       "run.plots=false"])
    recorder = Recorder()
    original = strategies.GradientStrategy.arch_step
    strategies.GradientStrategy.arch_step = lambda self, *a: recorder.arch_step(self, *a)
    captured = {}
    original_select = finish.select_architecture

    def select(alphas, profile, target):
        captured["alphas"] = [a.detach().clone() for a in alphas]
        return original_select(alphas, profile, target)

    finish.select_architecture = select
    started = time.perf_counter()
    try:
        result = run_search(config)
    finally:
        strategies.GradientStrategy.arch_step = original
        finish.select_architecture = original_select
    row = {"name": args.name, "config": args.config, "overrides": args.overrides,
           **report(recorder, captured["alphas"], time.perf_counter() - started),
           "test_accuracy": result.summary.get("test_accuracy"),
           "measured_latency": result.summary.get("measured_latency"),
           "target_latency_ms": result.summary.get("target_latency_ms"),
           "measured_within_tolerance": result.summary.get("measured_within_tolerance")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
