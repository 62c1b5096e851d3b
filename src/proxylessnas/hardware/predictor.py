"""The latency estimation model: a learned correction of the table sum.

Per-block tables miss what only a whole network shows: the per-layer framework overhead, cache
reuse between consecutive blocks, fusion. The correction is linear, per group of blocks (a group
is the output feature-map size, i.e. roughly a stage)::

    predicted(arch) = table_sum(arch) + b
                      + sum_{mbconv blocks k} (a_g lut(k) + d_g + m_g MMACs(k) + q_g Mparams(k))

with g the group of block k (in a graph space the sum runs over the non-zero cell-op edges too:
``nor_conv``, ``avg_pool``, ``skip``). The parameter term stands for cache effects: in a whole network
the weights of consecutive blocks evict each other, which an isolated, repeated block never sees.
Because it is a sum of per-block terms, it is itself a per-key cost (``lut(k) + a_g lut(k) +
d_g + m_g MMACs(k) + q_g Mparams(k)``, zero still 0, ``b`` once per network), so the expected cost
under the supernet's probabilities stays exact and differentiable. Fitted by
ridge regression on relative errors (rows weighted by 1 / measured) in float64; the ridge pulls
towards "no correction", so few measurements fall back towards the table sum rather than
over-fitting. (A gradient-boosted model was rejected: not differentiable, and a heavier dependency.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.cost import TableCostModel
from proxylessnas.hardware.flops import key_params_macs
from proxylessnas.hardware.keys import LayerKey
from proxylessnas.hardware.lut import LatencyTable

PREDICTOR_KIND = "linear_correction"
PREDICTOR_SCHEMA_VERSION = 1
FEATURES = ("lut", "one", "mmacs", "mparams")


SEARCHED_KINDS = ("mbconv", "nor_conv", "avg_pool", "skip")
"""Kinds that get a correction: MBConv blocks and graph-space cell ops (their per-key constant
also stands for the sum of the edge into its node, which no key prices)."""


def key_group(key: LayerKey) -> str | None:
    """The correction group of a key: the output side of MBConv blocks and cell ops; None for
    the rest (fixed parts: their cost is in every network, the intercept absorbs any error)."""
    return str(key.output[0]) if key.kind in SEARCHED_KINDS else None


def key_features(key: LayerKey, lut_value: float) -> tuple[float, ...]:
    params, macs = key_params_macs(key)
    return (lut_value, 1.0, macs / 1e6, params / 1e6)


@dataclass(frozen=True)
class LatencyPredictor:
    """Per-group coefficients (a, d, m, q) and a per-network intercept b (see module docstring)."""

    groups: dict[str, tuple[float, ...]]
    intercept: float
    fit: dict[str, Any]

    def correction(self, key: LayerKey, lut_value: float) -> float:
        group = key_group(key)
        if group is None:
            return 0.0
        if group not in self.groups:
            raise ProxylessError(f"predictor has no coefficients for blocks with output side {group}",
                                 "latency predictor", "fit the predictor on this space "
                                 "('proxyless latency validate --fit')")
        return float(np.dot(self.groups[group], key_features(key, lut_value)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": PREDICTOR_KIND, "schema_version": PREDICTOR_SCHEMA_VERSION,
                "features": list(FEATURES), "intercept": self.intercept,
                "groups": {g: list(v) for g, v in sorted(self.groups.items(), key=lambda kv: -int(kv[0]))},
                "fit": dict(self.fit)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "latency predictor") -> LatencyPredictor:
        if not isinstance(data, dict) or data.get("kind") != PREDICTOR_KIND:
            raise ProxylessError("unknown latency predictor kind", where, f"expected '{PREDICTOR_KIND}'")
        if data.get("schema_version") != PREDICTOR_SCHEMA_VERSION:
            raise ProxylessError(f"unsupported predictor schema_version {data.get('schema_version')!r}",
                                 where, f"refit the predictor (schema_version {PREDICTOR_SCHEMA_VERSION})")
        try:
            groups = {str(g): tuple(float(x) for x in v) for g, v in data["groups"].items()}
            if any(len(v) != len(FEATURES) for v in groups.values()):
                raise ValueError("wrong number of coefficients")
            return cls(groups, float(data["intercept"]), dict(data.get("fit") or {}))
        except (KeyError, TypeError, ValueError) as err:
            raise ProxylessError(f"malformed latency predictor ({err})", where, "refit it") from None


def _design_row(keys: Sequence[LayerKey], table: LatencyTable, groups: list[str]) -> np.ndarray:
    row = np.zeros(1 + len(groups) * len(FEATURES), dtype=np.float64)
    row[0] = 1.0
    for key in keys:
        group = key_group(key)
        if group is None:
            continue
        offset = 1 + groups.index(group) * len(FEATURES)
        row[offset:offset + len(FEATURES)] += key_features(key, table.lookup(key))
    return row


def fit_predictor(table: LatencyTable, archs_keys: Sequence[Sequence[LayerKey]],
                  measured: Sequence[float], ridge: float = 1e-2) -> LatencyPredictor:
    """Fit the correction to end-to-end ``measured`` latencies of networks given by their keys.

    Minimises ``sum_i ((y_i - table_sum_i - x_i w) / y_i)^2 + ridge * n * ||w_scaled||^2`` over
    w (columns scaled to unit RMS, intercept not penalised).
    """
    if len(archs_keys) != len(measured) or len(measured) < 3:
        raise ProxylessError("need at least 3 measured networks to fit the predictor",
                             "latency predictor", "measure more architectures")
    groups = sorted({g for keys in archs_keys for k in keys if (g := key_group(k)) is not None},
                    key=lambda g: -int(g))
    y = np.asarray(measured, dtype=np.float64)
    lut_sum = np.array([sum(table.lookup(k) for k in keys) for keys in archs_keys])
    x = np.stack([_design_row(keys, table, groups) for keys in archs_keys])
    weight = 1.0 / y
    a = x * weight[:, None]
    r = (y - lut_sum) * weight
    scale = np.sqrt((a ** 2).mean(axis=0))
    scale[scale == 0] = 1.0
    a_scaled = a / scale
    penalty = np.full(a.shape[1], ridge * len(y))
    penalty[0] = 0.0
    w_scaled = np.linalg.solve(a_scaled.T @ a_scaled + np.diag(penalty), a_scaled.T @ r)
    w = w_scaled / scale
    fitted = lut_sum + x @ w
    n_feat = len(FEATURES)
    coefficients = {g: tuple(float(v) for v in w[1 + i * n_feat:1 + (i + 1) * n_feat])
                    for i, g in enumerate(groups)}
    fit_info = {"n": len(y), "ridge": ridge,
                "train_mape": float(np.mean(np.abs(fitted - y) / y) * 100),
                "train_lut_mape": float(np.mean(np.abs(lut_sum - y) / y) * 100)}
    return LatencyPredictor(coefficients, float(w[0]), fit_info)


class PredictedCostModel(TableCostModel):
    """Table latency plus the learned correction, per key (so ``expected_cost`` stays exact)."""

    def __init__(self, table: LatencyTable, predictor: LatencyPredictor | None = None,
                 batch_size: int | None = None) -> None:
        super().__init__(table, batch_size)
        if predictor is None:
            if table.predictor is None:
                raise ProxylessError("latency table has no fitted predictor", table.source,
                                     "fit one with 'proxyless latency validate --fit N'")
            predictor = LatencyPredictor.from_dict(table.predictor, table.source)
        self.predictor = predictor
        self.per_network = predictor.intercept

    def cost(self, key: LayerKey) -> float:
        value = self.table.lookup(key)
        return value + self.predictor.correction(key, value)
