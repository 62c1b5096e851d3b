"""Predicted versus measured latency of whole networks: fitting the predictor and the report.

Networks are measured end to end in interleaved rounds (:func:`measure_interleaved`), a chunk
of networks at a time, with a :class:`SpeedGauge` (fixed reference networks timed in every chunk)
that puts all chunks on one speed scale. Metrics, for predictions p_i and measurements y_i (ms)::

    MAE = mean |p - y|, MAPE = 100 mean |p - y| / y, RMSE = sqrt(mean (p - y)^2),
    within_x = share of networks with |p - y| / y <= x %, Kendall tau-b of (p, y).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.figures import new_figure, save_figure
from proxylessnas.hardware.cost import KeyCostModel, TableCostModel
from proxylessnas.hardware.keys import arch_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable
from proxylessnas.hardware.measure import (
    Backend,
    Runner,
    compile_net,
    estimate_ms,
    measure_interleaved,
    prepare_runner,
    runner_from_program,
)
from proxylessnas.hardware.runtimes import SERIALISED
from proxylessnas.nets.net import build_net
from proxylessnas.progress import progress_bar
from proxylessnas.space.arch import Arch
from proxylessnas.space.spec import SearchSpace


def sample_archs(space: SearchSpace, count: int, seed: int = 0) -> list[Arch]:
    """``count`` architectures, each layer's op drawn uniformly from its candidates."""
    rng = random.Random(seed)
    return [Arch.from_ops(space, [rng.choice(layer.candidates) for layer in space.searched_layers])
            for _ in range(count)]


GAUGE_NETS = 3
GAUGE_SEED = 7_777_777


class RunnerCache:
    """Prepared runners kept by architecture: timing a net again (a second pass over the same nets,
    another session of one net) reuses its converted program instead of converting it again.

    Conversion is the slow part on some runtimes (ExecuTorch lowers a net in ~10 s, and its
    runtime keeps tens of MB of each loaded program until the process ends), and it is not what is
    being measured. The cost: later timings see the same compiled program, so the spread between
    them leaves out compile-to-compile variance (measured separately: within 1.8 % on OpenVINO).
    One cache serves one space, input shape and backend.
    """

    def __init__(self) -> None:
        self.runners: dict[str, Runner] = {}
        self.prepared = 0

    @staticmethod
    def key(arch: Arch) -> str:
        return json.dumps(arch.to_dict()["choices"], sort_keys=True)

    def __contains__(self, arch: Arch) -> bool:
        return self.key(arch) in self.runners

    def add(self, arch: Arch, runner: Runner) -> None:
        self.runners[self.key(arch)] = runner
        self.prepared += 1

    def get(self, arch: Arch) -> Runner:
        return self.runners[self.key(arch)]


def _compile_in_worker(space: SearchSpace, arch: Arch, shape: tuple[int, ...], backend: Backend,
                       seed: int) -> bytes:
    return compile_net(build_net(space, arch), shape, backend, seed)


class ProgramPool:
    """Worker processes (one torch thread each) that convert nets to programs (:func:`compile_net`)
    side by side, for runtimes whose programs are bytes (:data:`SERIALISED`); the main process only
    loads and times them. On ExecuTorch, whose lowering (~10 s a net on one core, ~20 s INT8) is
    most of a validation's time, two workers on two cores halve it. Conversion and timing never
    overlap: :func:`measure_networks` converts a chunk's nets before timing them."""

    def __init__(self, workers: int) -> None:
        self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=torch.set_num_threads, initargs=(1,))

    def compile(self, space: SearchSpace, items: Sequence[tuple[Arch, int]], shape: Sequence[int],
                backend: Backend) -> list[bytes]:
        """The programs of ``(arch, input seed)`` pairs, in order."""
        futures = [self.executor.submit(_compile_in_worker, space, arch, tuple(shape), backend, seed)
                   for arch, seed in items]
        return [future.result() for future in futures]

    def close(self) -> None:
        self.executor.shutdown()

    def __enter__(self) -> ProgramPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class SpeedGauge:
    """Reference networks timed in every chunk of :func:`measure_networks`, interleaved with the
    chunk's networks (built afresh for each chunk, like them).

    The networks of one chunk share the machine's speed of that moment, but a shared machine's
    speed moves between chunks (by up to +-10 % over tens of seconds on the development VM). Chunk
    c's latencies are divided by its speed factor::

        f_c = geomean_g (m_gc / r_g)

    with m_gc the median of gauge network g in chunk c and r_g its reference: the median of m_gc
    over the chunks of the first measurement that used this gauge. Later measurements keep that
    reference, so two passes with one gauge share one scale.
    """

    archs: list[Arch]
    reference: list[float] | None = None
    factors: list[float] = field(default_factory=list)

    @classmethod
    def for_space(cls, space: SearchSpace, count: int = GAUGE_NETS, seed: int = GAUGE_SEED) -> SpeedGauge:
        """``count`` random architectures of ``space`` (a fixed seed: the same gauge every time)."""
        return cls(sample_archs(space, count, seed))

    def chunk_factors(self, gauge_medians: Sequence[Sequence[float]]) -> list[float]:
        """f_c for each chunk from the gauge networks' medians (one row per chunk); the first call
        sets the reference. All factors are kept in ``factors`` for reports."""
        if self.reference is None:
            self.reference = [statistics.median(row[g] for row in gauge_medians)
                              for g in range(len(self.archs))]
        factors = [math.exp(statistics.fmean(math.log(m / r) for m, r in zip(row, self.reference)))
                   for row in gauge_medians]
        self.factors.extend(factors)
        return factors

    def summary(self) -> dict[str, Any]:
        """Number of gauge nets and chunks, and the range of the chunks' speed factors."""
        factors = self.factors or [1.0]
        return {"nets": len(self.archs), "chunks": len(self.factors), "factor_min": min(factors),
                "factor_median": statistics.median(factors), "factor_max": max(factors)}


def measure_networks(space: SearchSpace, archs: Sequence[Arch], backend: Backend, *, rounds: int = 20,
                     per_round: int | None = None, seconds_per_net: float = 0.6, chunk_size: int = 16,
                     seed: int = 0, gauge: SpeedGauge | None = None, cache: RunnerCache | None = None,
                     pool: ProgramPool | None = None, progress: bool = False) -> list[LatencyStats]:
    """End-to-end latency of each arch's standalone net on ``backend`` (batch from the backend).

    Each net is timed ``rounds * per_round`` times; by default ``per_round`` gives each net about
    ``seconds_per_net`` of timing (from a quick estimate of the chunk's median latency), at least
    3 per round: fast nets get more samples, so their medians are as stable as the slow ones'.
    With a ``gauge``, its networks are timed in every chunk too and each chunk's statistics are
    divided by the chunk's speed factor (:class:`SpeedGauge`). With a ``cache``, nets (gauge ones
    included) already prepared in it are not converted again. With a ``pool``, nets are converted
    in its worker processes.
    """
    shape = (backend.batch_size, space.in_chs, space.resolution, space.resolution)

    def prepare(items: list[tuple[Arch, int]]) -> list[Runner]:
        """Runners of ``(arch, input seed)`` pairs: from the cache, else converted (in the pool's
        workers where there is one)."""
        new = [(arch, seed) for arch, seed in items if cache is None or arch not in cache]
        if pool is not None and backend.name in SERIALISED:
            made = [runner_from_program(program, shape, backend, seed)
                    for (_, seed), program in zip(new, pool.compile(space, new, shape, backend))]
        else:
            made = [prepare_runner(build_net(space, arch), shape, backend, seed=seed) for arch, seed in new]
        if cache is None:
            return made
        for (arch, _), runner in zip(new, made):
            cache.add(arch, runner)
        return [cache.get(arch) for arch, _ in items]

    # the gauge nets are prepared once and timed in every chunk: the same compiled programs each
    # time, and no repeated conversion (ExecuTorch lowers a net in ~10 s)
    extra = [] if gauge is None else prepare([(arch, 10**6 + j) for j, arch in enumerate(gauge.archs)])
    results: list[LatencyStats] = []
    gauge_medians: list[list[float]] = []
    bar = progress_bar(len(archs), desc=f"networks {backend.label}", unit="net", enabled=progress)
    for start in range(0, len(archs), chunk_size):
        chunk = list(archs[start:start + chunk_size])
        runners = prepare([(arch, start + i) for i, arch in enumerate(chunk)]) + extra
        repeats = per_round or repeats_per_round(runners, rounds, seconds_per_net, backend.threads)
        stats = measure_interleaved(runners, warmup=5, rounds=rounds, per_round=repeats,
                                    threads=backend.threads, seed=seed + start)
        results.extend(stats[:len(chunk)])
        gauge_medians.append([s.median for s in stats[len(chunk):]])
        bar.update(len(chunk))
    bar.close()
    if gauge is None or not results:
        return results
    factors = gauge.chunk_factors(gauge_medians)
    return [s.scaled(1.0 / factors[i // chunk_size]) for i, s in enumerate(results)]


def repeats_per_round(runners: Sequence[Runner], rounds: int, seconds_per_net: float, threads: int,
                      minimum: int = 3, maximum: int = 50) -> int:
    """Timings per round that give a net of the chunk's median latency ``seconds_per_net``."""
    estimate = statistics.median(estimate_ms(r, threads, budget_s=0.02) for r in runners)
    wanted = math.ceil(seconds_per_net * 1e3 / (max(estimate, 1e-3) * rounds))
    return max(minimum, min(maximum, wanted))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall tau-b (ties counted in the denominator), O(n^2)."""
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else 0.0


def accuracy_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """MAE, MAPE (%), RMSE, within_5 and within_10 (shares in [0, 1]), Kendall tau."""
    if len(predicted) != len(measured) or not measured:
        raise ProxylessError("need as many predictions as measurements (at least one)",
                             "latency validation", "measure at least one network")
    errors = [p - y for p, y in zip(predicted, measured)]
    relative = [abs(e) / y for e, y in zip(errors, measured)]
    n = len(errors)
    return {"mae": sum(abs(e) for e in errors) / n, "mape": 100 * sum(relative) / n,
            "rmse": math.sqrt(sum(e * e for e in errors) / n),
            "within_5": sum(r <= 0.05 for r in relative) / n,
            "within_10": sum(r <= 0.10 for r in relative) / n,
            "kendall_tau": kendall_tau(predicted, measured)}


def backend_of_table(table: LatencyTable, batch_size: int | None = None, threads: int | None = None,
                     allow_mismatch: bool = False) -> Backend:
    """The backend a table was measured on, to measure whole networks the same way here, at the
    table's batch size and threads unless ``batch_size`` / ``threads`` target others. The table's
    identity (runtime version, CPU, precision, batch, threads) must match this machine's for that
    backend, unless ``allow_mismatch`` (:func:`~proxylessnas.hardware.identity.check_identity`)."""
    from proxylessnas.hardware.identity import check_identity
    from proxylessnas.hardware.measure import BACKENDS

    p = table.provenance
    if p.get("backend") not in BACKENDS:
        raise ProxylessError(f"cannot measure on this machine for a '{p.get('backend')}' table",
                             table.source, "validate on the device the table was measured on")
    threads = threads or p.get("threads") or 1
    clock = p.get("clock") if p.get("clock") in ("thread", "wall") and threads == p.get("threads") else "auto"
    backend = Backend(p["backend"], p.get("device_type", "cpu"), batch_size or table.target.batch_size,
                      int(threads), clock)
    backend.check_available()
    check_identity(p, backend.provenance(), table.source, allow_mismatch=allow_mismatch,
                   fix=f"build a table here for {backend.label}, batch {backend.batch_size}")
    return backend


def store_predictor(space: SearchSpace, table: LatencyTable, archs: Sequence[Arch],
                    measured: Sequence[float], *, seed: int, backend: Backend) -> None:
    """Fit the predictor on measured archs and store it in ``table.predictor``."""
    from proxylessnas.hardware.predictor import fit_predictor

    predictor = fit_predictor(table, [arch_keys(space, a) for a in archs], measured)
    table.predictor = {**predictor.to_dict(), "fit": {**predictor.fit, "seed": seed,
                                                      "backend": backend.label}}


def validate_models(space: SearchSpace, models: dict[str, KeyCostModel], backend: Backend,
                    samples: int, *, seed: int = 0, gauge: SpeedGauge | None = None, progress: bool = False,
                    **measure: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Measure ``samples`` random archs; metrics per model name. Returns (report, rows)."""
    archs = sample_archs(space, samples, seed)
    stats = measure_networks(space, archs, backend, seed=seed, gauge=gauge, progress=progress, **measure)
    report, rows = score_models(space, models, archs, stats, seed)
    return with_gauge(report, gauge), rows


def with_gauge(report: dict[str, Any], gauge: SpeedGauge | None) -> dict[str, Any]:
    report["speed_gauge"] = gauge.summary() if gauge is not None else None
    return report


def fit_and_validate(space: SearchSpace, table: LatencyTable, backend: Backend, fit: int, samples: int,
                     *, seed: int = 0, fit_seed: int = 1000, gauge: SpeedGauge | None = None,
                     progress: bool = False, **measure: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fit the predictor on ``fit`` archs and score it on ``samples`` others (seed ``seed``).

    Both sets are measured in one session, in one shuffled order, so that a slow drift of the
    machine's speed (a few % over minutes on a shared machine) hits fitting and validation
    alike instead of showing up as a predictor bias; the ``gauge`` removes the faster changes
    between chunks. The validation archs are never fitted on.
    """
    fit_archs, test_archs = sample_archs(space, fit, fit_seed), sample_archs(space, samples, seed)
    stats = measure_shuffled(space, fit_archs + test_archs, backend, seed=seed, shuffle_seed=seed + fit_seed,
                             gauge=gauge, progress=progress, **measure)
    store_predictor(space, table, fit_archs, [s.median for s in stats[:fit]], seed=fit_seed,
                    backend=backend)
    report, rows = score_models(space, table_models(table), test_archs, stats[fit:], seed)
    report["fit_measured_with_validation"] = True
    return with_gauge(report, gauge), rows


def measure_shuffled(space: SearchSpace, archs: Sequence[Arch], backend: Backend, *, seed: int = 0,
                     shuffle_seed: int = 0, **measure: Any) -> list[LatencyStats]:
    """:func:`measure_networks` of ``archs`` in a shuffled order (so that a slow drift of the
    machine's speed hits every subset alike), returned in the order of ``archs``."""
    order = list(range(len(archs)))
    random.Random(shuffle_seed).shuffle(order)
    shuffled = measure_networks(space, [archs[i] for i in order], backend, seed=seed, **measure)
    stats: list[LatencyStats] = [shuffled[0]] * len(archs)
    for position, index in enumerate(order):
        stats[index] = shuffled[position]
    return stats


def score_models(space: SearchSpace, models: dict[str, KeyCostModel], archs: Sequence[Arch],
                 stats: Sequence[LatencyStats], seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics per model name against the measured medians ``stats`` of ``archs``."""
    measured = [s.median for s in stats]
    report: dict[str, Any] = {"n": len(archs), "unit": "ms", "seed": seed}
    rows = [{"choices": a.to_dict()["choices"], "measured": m, "measured_p10": s.p10,
             "measured_p90": s.p90} for a, m, s in zip(archs, measured, stats)]
    for name, model in models.items():
        predicted = [model.arch_cost(space, a) for a in archs]
        report[name] = accuracy_metrics(predicted, measured)
        for row, p in zip(rows, predicted):
            row[name] = p
    return report, rows


def plot_scatter(rows: Sequence[dict[str, Any]], names: Sequence[str], path: str | Path,
                 title: str = "") -> Path:
    """Predicted-vs-measured scatter, one colour per model, with the +-10 % band."""
    measured = [r["measured"] for r in rows]
    low, high = min(measured) * 0.85, max(measured) * 1.15
    fig = new_figure(5, 5)
    ax = fig.add_subplot()
    ax.plot([low, high], [low, high], "k-", lw=1, label="y = x")
    ax.fill_between([low, high], [low * 0.9, high * 0.9], [low * 1.1, high * 1.1], color="0.9",
                    label="+-10 %")
    for name in names:
        ax.scatter(measured, [r[name] for r in rows], s=12, label=name)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def table_models(table: LatencyTable) -> dict[str, KeyCostModel]:
    """The table sum, and the predictor when the table has one."""
    models: dict[str, KeyCostModel] = {"lut": TableCostModel(table)}
    if table.predictor is not None:
        from proxylessnas.hardware.predictor import PredictedCostModel

        models["predictor"] = PredictedCostModel(table)
    return models
