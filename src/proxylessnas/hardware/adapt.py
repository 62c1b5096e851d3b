"""Few-shot transfer of a latency model to a new setting (runtime, threads, batch, device).

A table measured in one setting already ranks the blocks of a space; in a related setting what
changes is mostly a scale, the cost of a multiply-accumulate (threads, batches and INT8 speed up
compute-bound work, not per-layer overhead), the cost of depthwise work (INT8 kernels speed it up
least) and the overhead of a layer. From N <= 10 networks measured end to end in the new setting
the transfer fits six numbers::

    new(arch) = alpha old(arch) + beta MMACs(arch) + kappa DW(arch) + mu DW_L(arch)
                + delta layers(arch) + gamma

with ``old`` the source table's cost model (its predictor when it has one), MMACs the network's
multiply-accumulates, ``DW`` the MMACs of its depthwise convolutions, ``DW_L`` those of its
depthwise convolutions whose channel count is not a multiple of ``L`` (vector lanes: a SIMD
kernel runs the remainder channels in a slow tail loop; measured: ONNX Runtime INT8 prices a
depthwise 7x7 over 72 channels 1.5x one over 144) and ``layers`` its number of non-zero blocks
(keys). Like the predictor it is a sum of per-key terms, ``new(key) = alpha old(key) + beta
MMACs(key) + kappa DW(key) + mu DW_L(key) + delta``, plus ``gamma + alpha b_old`` once per
network, so the adapted table prices the supernet's expected latency exactly. Fitted on relative
errors (rows weighted 1 / y) in float64 with a ridge that pulls the weights towards the pure
rescaling ``(s, 0, ..., 0)``, ``s = argmin sum_i (1 - s old_i / y_i)^2``: all that two or three
measurements support. The ridge's strength and ``L`` (in :data:`LANES`) are the pair with the
lowest leave-one-out error over the N nets among the fits that price at >= 0 every block of the
space that the source prices at >= 0 (a source predictor may price a block below zero: its
per-stage corrections can outweigh a cheap block's table time); the pure rescaling, which keeps
the source's own signs, is always one of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.cost import KeyCostModel
from proxylessnas.hardware.flops import key_depthwise_convs, key_params_macs
from proxylessnas.hardware.keys import LayerKey, arch_keys, space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.predictor import PREDICTOR_KIND, PREDICTOR_SCHEMA_VERSION, key_group
from proxylessnas.space.arch import Arch
from proxylessnas.space.spec import SearchSpace

FEATURES = ("old", "mmacs", "dw_mmacs", "dw_unaligned_mmacs", "layers", "one")
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, math.inf)
"""Ridge strengths tried (times N, on unit-RMS columns); ``inf`` is the pure rescaling."""
LANES = (8, 16, 32)
"""Channels per SIMD vector tried for ``DW_L``: 8 and 16 are the float32 (or int32 accumulator)
lanes of AVX2 and AVX-512, 32 the int16 lanes of AVX-512."""


@dataclass(frozen=True)
class Transfer:
    """``new(key) = alpha old(key) + beta MMACs(key) + kappa DW(key) + mu DW_L(key) + delta``;
    ``gamma`` once per network."""

    alpha: float
    beta: float
    kappa: float
    mu: float
    delta: float
    gamma: float
    lanes: int
    fit: dict[str, Any]

    @classmethod
    def from_vector(cls, w: np.ndarray, lanes: int, fit: dict[str, Any]) -> Transfer:
        return cls(*(float(v) for v in w), lanes, fit)

    def key_cost(self, key: LayerKey, old_value: float) -> float:
        per_key = np.array([self.alpha, self.beta, self.kappa, self.mu, self.delta])
        return float(key_terms(key, self.lanes, old_value) @ per_key)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta_per_mmac": self.beta, "kappa_per_depthwise_mmac": self.kappa,
                "mu_per_unaligned_depthwise_mmac": self.mu, "lanes": self.lanes,
                "delta_per_layer": self.delta, "gamma": self.gamma, **self.fit}


def key_terms(key: LayerKey, lanes: int, old_value: float = 0.0) -> np.ndarray:
    """(old cost, MMACs, depthwise MMACs, depthwise MMACs at channels not a multiple of ``lanes``,
    1) of one key."""
    convs = key_depthwise_convs(key)
    return np.array([old_value, key_params_macs(key)[1] / 1e6, sum(m for _, m in convs) / 1e6,
                     sum(m for c, m in convs if c % lanes) / 1e6, 1.0], dtype=np.float64)


def network_features(model: KeyCostModel, space: SearchSpace, arch: Arch, lanes: int) -> np.ndarray:
    """The :data:`FEATURES` of one network (old cost, MMACs, depthwise MMACs, unaligned
    depthwise MMACs, non-zero blocks, 1)."""
    keys = arch_keys(space, arch)
    terms = sum((key_terms(k, lanes) for k in keys), np.zeros(5))
    terms[0] = model.arch_cost(space, arch)
    return np.append(terms, 1.0)


def pure_scale(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(s, 0, 0, 0)`` with ``s`` minimising ``sum (1 - s x_old / y)^2``."""
    ratio = x[:, 0] / y
    w = np.zeros(x.shape[1])
    w[0] = float(ratio.sum() / (ratio ** 2).sum())
    return w


def solve(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Weights minimising ``sum ((y - x w) / y)^2 + ridge n ||D (w - w0)||^2`` (D: unit-RMS column
    scales of x / y; w0 the pure rescaling)."""
    w0 = pure_scale(x, y)
    if math.isinf(ridge):
        return w0
    a = x / y[:, None]
    scale = np.sqrt((a ** 2).mean(axis=0))
    scale[scale == 0] = 1.0
    penalty = np.diag(ridge * len(y) * scale ** 2)
    return np.linalg.solve(a.T @ a + penalty, a.T @ np.ones(len(y)) + penalty @ w0)


def leave_one_out(x: np.ndarray, y: np.ndarray, ridge: float) -> float:
    """Mean relative error (%) of each net predicted by the fit on the others."""
    errors = []
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        w = solve(x[rest], y[rest], ridge)
        errors.append(abs(float(x[i] @ w) - y[i]) / y[i])
    return 100 * float(np.mean(errors))


def fit_transfer(x: dict[int, np.ndarray], y: np.ndarray, key_features: dict[int, np.ndarray]) -> Transfer:
    """The transfer of the module docstring from each lane count's features ``x[L]`` (n x 6,
    :func:`network_features`) and measured ``y`` (ms); ``key_features[L]`` (k x 5, :func:`key_terms`
    of every key of the space): the blocks must stay priced at >= 0 where the source prices them so."""
    if len(y) < 1 or any(len(v) != len(y) for v in x.values()):
        raise ProxylessError("no measured networks to adapt from", "latency adapt",
                             "measure at least one network (--measure N)")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ProxylessError("measured latencies must be positive finite numbers", "latency adapt",
                             "check the measured values")
    candidates = []
    for lanes, features in x.items():
        priced = key_features[lanes][key_features[lanes][:, 0] >= 0]  # blocks the source prices >= 0
        for ridge in (RIDGES if len(y) >= 3 else (math.inf,)):
            w = solve(features, y, ridge)
            negative = not math.isinf(ridge) and np.any(priced @ w[:5] < 0)
            if not np.all(np.isfinite(w)) or negative:
                continue  # a fit that turns some block negative is no latency model
            loo = leave_one_out(features, y, ridge) if len(y) >= 3 else None
            candidates.append((math.inf if loo is None else loo, -ridge, lanes, ridge, w, loo))
    _, _, lanes, ridge, w, loo = min(candidates, key=lambda c: c[:3])  # ties: the stronger ridge, fewer lanes
    fitted = x[lanes] @ w
    fit = {"n": len(y), "ridge": None if math.isinf(ridge) else ridge, "pure_rescaling": math.isinf(ridge),
           "train_mape": 100 * float(np.mean(np.abs(fitted - y) / y)),
           "leave_one_out_mape": loo}
    return Transfer.from_vector(w, lanes, fit)


def adapted_table(source: LatencyTable, old: KeyCostModel, space: SearchSpace, transfer: Transfer,
                  batch_size: int, provenance: dict[str, Any]) -> LatencyTable:
    """A table for the new setting: every key of ``space`` priced by the transfer, and the
    per-network term ``gamma + alpha b_old`` stored as a predictor without per-block corrections."""
    keys = space_keys(space).unique()
    entries = {}
    for key in keys:
        value = transfer.key_cost(key, old.cost(key))
        measured = source.entries.get(str(key))  # present: ``old`` prices only keys the table holds
        entries[str(key)] = LatencyStats(value, value, abs(measured.std * transfer.alpha), None, None,
                                         measured.count)
    groups = sorted({g for k in keys if (g := key_group(k)) is not None}, key=lambda g: -int(g))
    predictor = {"kind": PREDICTOR_KIND, "schema_version": PREDICTOR_SCHEMA_VERSION,
                 "features": ["lut", "one", "mmacs", "mparams"],
                 "intercept": transfer.gamma + transfer.alpha * old.per_network,
                 "groups": {g: [0.0, 0.0, 0.0, 0.0] for g in groups},
                 "fit": {"kind": "few-shot transfer", **transfer.to_dict()}}
    target = TableTarget(source.target.space, dict(source.target.space_overrides), source.target.resolution,
                         batch_size)
    return LatencyTable(target, provenance, entries, source.unit, "median", predictor)


def key_feature_matrix(old: KeyCostModel, space: SearchSpace, lanes: int) -> np.ndarray:
    """:func:`key_terms` of every unique key of ``space``."""
    return np.stack([key_terms(k, lanes, old.cost(k)) for k in space_keys(space).unique()])


def adapt(source: LatencyTable, old: KeyCostModel, space: SearchSpace, archs: Sequence[Arch],
          measured: Sequence[float], batch_size: int, provenance: dict[str, Any]) -> LatencyTable:
    """Fit the transfer on ``archs`` measured at ``measured`` (ms) and return the adapted table."""
    x = {lanes: np.stack([network_features(old, space, a, lanes) for a in archs]) if archs
         else np.zeros((0, len(FEATURES))) for lanes in LANES}
    transfer = fit_transfer(x, np.asarray(measured, dtype=np.float64),
                            {lanes: key_feature_matrix(old, space, lanes) for lanes in LANES})
    return adapted_table(source, old, space, transfer, batch_size, provenance)
