"""Whole-net timing on the search's hardware, and the latency calibration built on it.

A per-layer table sums to a prediction that misses what only a whole network shows (framework
overhead per module, cache effects). Before training, ``latency.calibrate`` nets spread over
the space's cost range are timed in one interleaved session and fitted by least squares::

    measured = slope * predicted + intercept

which moves the target into table units (:meth:`~proxylessnas.search.target.LatencyTarget.calibrate`).
With ``latency.gauge`` reference nets in every session, each later session's medians are divided
by its speed factor against the calibration session, so that a change of the machine's speed in
between does not move the band.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from proxylessnas.hardware.targets import MEASURED_TARGETS
from proxylessnas.hardware.validate import SpeedGauge, repeats_per_round
from proxylessnas.search.config import SearchConfig
from proxylessnas.search.cost_profile import CostProfile
from proxylessnas.search.target import LatencyTarget
from proxylessnas.space import Arch, SearchSpace

MEASURED_HARDWARE = tuple(MEASURED_TARGETS)  # cpu, cuda and the CPU runtimes (hardware/runtimes.py)


def is_measured(config: SearchConfig) -> bool:
    """Whether the search's hardware times whole nets here (not tables, MACs or parameters)."""
    return config.hardware.target in MEASURED_HARDWARE


def will_calibrate(config: SearchConfig) -> bool:
    """Whether the run times whole nets to map table sums to measured latency (``latency.calibrate``)."""
    return bool(config.latency.calibrate and config.latency.mode != "penalty" and is_measured(config))


def spread_architectures(profile: CostProfile, count: int, seed: int) -> list[list[int]]:
    """``count`` architectures whose costs spread from the cheapest to the most expensive: for the
    i-th, every layer takes the candidate at rank ~ q_i * (N - 1) of its costs (q_i evenly from 0
    to 1), jittered by one rank at random."""
    rng = np.random.default_rng(seed)
    archs = []
    for q in np.linspace(0.0, 1.0, count):
        indices = []
        for costs in profile.candidate_costs:
            order = torch.argsort(costs).tolist()
            rank = int(np.clip(round(q * (len(order) - 1) + rng.integers(-1, 2)), 0, len(order) - 1))
            indices.append(order[rank])
        archs.append(indices)
    return archs


def calibrate_target(target: LatencyTarget, space: SearchSpace, config: SearchConfig,
                     write: Callable[[str], None]) -> dict[str, Any]:
    """Time ``latency.calibrate`` whole nets, fit measured = slope * predicted + intercept (least
    squares) and calibrate ``target`` with it; ``write`` gets one line about the fit."""
    profile = target.profile
    archs = spread_architectures(profile, config.latency.calibrate, config.run.seed)
    predicted = np.array([profile.cost_of(a) for a in archs])
    gauge = search_gauge(target, space, config)
    measured = np.array(time_architectures(space, archs, config, gauge))
    target.speed_reference = None if gauge is None else gauge.reference
    slope, intercept = np.polyfit(predicted, measured, 1)
    target.calibrate(float(slope), float(intercept))
    residual = measured - (slope * predicted + intercept)
    write(f"latency calibration on {len(archs)} nets: measured = {slope:.3f} * table + "
          f"{intercept:.3f} ms (residual RMS {float(np.sqrt(np.mean(residual ** 2))):.3f} ms); "
          f"target {target.requested:.4g} ms = {target.table:.4g} in table units")
    return {"slope": float(slope), "intercept": float(intercept), "predicted": predicted.tolist(),
            "measured": measured.tolist()}


SEARCH_GAUGE_NETS = 2
UNGAUGED_HARDWARE = ("openvino",)
"""Runtimes searched without the speed gauge unless ``latency.gauge`` says otherwise: on OpenVINO FP32
the gauge nets read 35-37 % slower than the calibration in the first session after training in 2
of 2 searches, and the nets timed beside them did not (those searches missed the band by +21.9 and
-8.2 %); 3 of 3 searches without it landed within +-3.4 % (docs/latency.md)."""


def gauge_nets(config: SearchConfig) -> int:
    """``latency.gauge``, or where it is unset 2 reference nets (none on :data:`UNGAUGED_HARDWARE`)."""
    if config.latency.gauge is not None:
        return config.latency.gauge
    return 0 if config.hardware.target in UNGAUGED_HARDWARE else SEARCH_GAUGE_NETS


def search_gauge(target: Any, space: SearchSpace, config: SearchConfig) -> SpeedGauge | None:
    """The ``latency.gauge`` reference nets (:func:`gauge_nets`), on the calibration session's scale
    once there is one (``target.speed_reference``)."""
    count = gauge_nets(config)
    if count == 0:
        return None
    gauge = SpeedGauge.for_space(space, count)
    gauge.reference = target.speed_reference
    return gauge


def time_nets(nets: list[torch.nn.Module], config: SearchConfig, space: SearchSpace,
              warmup: int = 5, gauge: SpeedGauge | None = None) -> list[float]:
    """Median latency (ms) of each whole net on the search's hardware, one interleaved session;
    with a ``gauge``, its nets join the session and the medians are divided by the session's
    speed factor (the first session with the gauge sets its reference).

    Each net is timed in 10 rounds (``hardware.measure_runs // 5``) for about
    ``hardware.seconds_per_net`` and at least ``measure_runs`` times, as the validated accuracy
    protocol times its nets (docs/latency.md): a fixed count alone made a session of 0.1 ms nets
    last ~50 ms, open to any transient of the machine.
    """
    from proxylessnas.hardware.measure import measure_interleaved, prepare_runner
    from proxylessnas.hardware.targets import backend_for
    from proxylessnas.nets import build_net

    hardware = config.hardware
    backend = backend_for(hardware.target, hardware.batch_size, hardware.threads)
    shape = (hardware.batch_size, space.in_chs, space.resolution, space.resolution)
    extra = [] if gauge is None else [build_net(space, arch) for arch in gauge.archs]
    runners = [prepare_runner(net, shape, backend) for net in [*nets, *extra]]
    rounds = max(2, hardware.measure_runs // 5)
    per_round = repeats_per_round(runners, rounds, hardware.seconds_per_net, backend.threads,
                                  minimum=math.ceil(hardware.measure_runs / rounds), maximum=2000)
    stats = measure_interleaved(runners, warmup=warmup, rounds=rounds, per_round=per_round,
                                threads=backend.threads)
    medians = [float(s.median) for s in stats]
    if gauge is None:
        return medians
    factor = gauge.chunk_factors([medians[len(nets):]])[0]
    return [m / factor for m in medians[:len(nets)]]


def time_architectures(space: SearchSpace, archs: list[list[int]], config: SearchConfig,
                       gauge: SpeedGauge | None = None) -> list[float]:
    """:func:`time_nets` of each architecture's net (fresh weights: weights do not change the time)."""
    from proxylessnas.nets import build_net

    layers = space.searched_layers
    return time_nets([build_net(space, Arch.from_ops(space, [layer.candidates[i] for layer, i in
                                                             zip(layers, indices)])) for indices in archs],
                     config, space, gauge=gauge)


def measure_net_latency(net: torch.nn.Module, config: SearchConfig, space: SearchSpace,
                        gauge: SpeedGauge | None = None) -> float | None:
    """Median latency (ms) of the whole derived net on the measured hardware; None for tables / MACs."""
    if not is_measured(config):
        return None
    return time_nets([net], config, space, warmup=10, gauge=gauge)[0]
