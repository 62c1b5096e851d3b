"""The latency lookup table (LUT): one measured cost per unique :class:`LayerKey`, as JSON.

File format (``schema_version`` 1)::

    {"kind": "proxylessnas.latency_table", "schema_version": 1, "unit": "ms",
     "statistic": "median",                       # the entry field a lookup returns
     "target": {"space": "proxyless-cifar", "space_overrides": {}, "resolution": 32,
                "batch_size": 1},                 # what the table prices (space may be null)
     "provenance": {"device": "AMD EPYC ...", "backend": "torch", "backend_version": "2.13.0",
                    "dtype": "float32", "threads": 1, "torch_version": "2.13.0",
                    "date": "2025-...", ...},
     "entries": {"<key>": {"median": .., "mean": .., "std": .., "p10": .., "p90": ..,
                           "count": ..}},
     "predictor": null | {...}}                   # see hardware.predictor

Lookups are strict: a missing key raises a :class:`ProxylessError` that lists the missing keys.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.keys import LayerKey
from proxylessnas.runtime.atomic import write_json_atomic
from proxylessnas.space.arch import Space, read_json

TABLE_KIND = "proxylessnas.latency_table"
TABLE_SCHEMA_VERSION = 1
STATISTICS = ("median", "mean")
UNITS = ("ms",)  # every timing we take, and the whole-net measurements compared with tables, are in ms


@dataclass(frozen=True)
class LatencyStats:
    """Summary of the repeated timings of one block, in the table's unit."""

    median: float | None
    mean: float
    std: float
    p10: float | None
    p90: float | None
    count: int

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> LatencyStats:
        """Median, mean, population std, 10th and 90th percentile (linear interpolation)."""
        if not samples:
            raise ProxylessError("no timing samples", "latency stats", "measure at least once")
        values = sorted(float(v) for v in samples)
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
        return cls(quantile(values, 0.5), mean, std, quantile(values, 0.1), quantile(values, 0.9), n)

    def scaled(self, factor: float) -> LatencyStats:
        """The same timings on a machine ``factor`` times as slow (every statistic times ``factor``)."""
        times = {name: None if value is None else value * factor
                 for name, value in (("median", self.median), ("p10", self.p10), ("p90", self.p90))}
        return LatencyStats(times["median"], self.mean * factor, self.std * factor, times["p10"],
                            times["p90"], self.count)

    def value(self, statistic: str) -> float:
        result = getattr(self, statistic)
        if result is None:
            raise ProxylessError(f"entry has no {statistic}", "latency table",
                                 f"set the table's statistic to one its entries have ({STATISTICS})")
        return float(result)

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "mean": self.mean, "std": self.std, "p10": self.p10,
                "p90": self.p90, "count": self.count}


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Quantile with linear interpolation between order statistics (numpy's default)."""
    n = len(sorted_values)
    pos = q * (n - 1)
    low = math.floor(pos)
    high = min(low + 1, n - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def space_settings(space: Space) -> dict[str, Any]:
    """What a space resolves to, without how it was spelled (its override dict) or its resolution
    (a table records that on its own): two spaces that build the same nets have the same settings."""
    settings = space.to_dict()
    settings.pop("overrides", None)
    settings.pop("resolution", None)
    return settings


@dataclass(frozen=True)
class TableTarget:
    """What a table prices: a space (``None``: any space whose keys it holds), resolution, batch."""

    space: str | None
    space_overrides: dict[str, Any]
    resolution: int
    batch_size: int

    @classmethod
    def of(cls, space: Space, resolution: int | None = None, batch_size: int = 1) -> TableTarget:
        return cls(space.name, dict(space.overrides), resolution or space.resolution, batch_size)

    def describe(self) -> str:
        name = self.space or "any space"
        extra = f" {self.space_overrides}" if self.space_overrides else ""
        return f"{name}{extra} at {self.resolution}x{self.resolution}, batch {self.batch_size}"

    @classmethod
    def from_dict(cls, data: Any, where: str = "latency table") -> TableTarget:
        """The ``target`` of a table or manifest file, every field checked."""
        from proxylessnas.arguments import positive_int, resolution

        fix = "give a table written by 'proxyless latency build' or 'import'"
        if not isinstance(data, dict):
            raise ProxylessError("malformed latency table (no 'target' object)", where, fix)
        space, overrides = data.get("space"), data.get("space_overrides")
        overrides = {} if overrides is None else overrides
        if space is not None and not isinstance(space, str):
            raise ProxylessError(f"malformed target space {space!r}", where, "give a space name or null")
        if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
            raise ProxylessError("malformed target space_overrides", where, "give an object of name: value")
        return cls(space, dict(overrides),
                   resolution.check(data.get("resolution"), where, "target.resolution"),
                   positive_int.check(data.get("batch_size"), where, "target.batch_size"))

    def prices_space(self, space: Space, where: str = "latency table") -> bool:
        """Whether the table's space resolves to the same settings as ``space`` (a space named by no
        preset, built by hand, can only be compared by name and overrides)."""
        from proxylessnas.space import get_space, space_names

        if self.space is None:
            return True
        if self.space != space.name:
            return False
        if self.space not in space_names():
            return _plain(self.space_overrides) == _plain(space.overrides)
        try:
            mine = get_space(self.space, **self.space_overrides)
        except ProxylessError as err:
            raise ProxylessError(f"the table's space cannot be built ({err.what})", where,
                                 "rebuild the table with 'proxyless latency build'") from None
        return space_settings(mine) == space_settings(space)

    def mismatch(self, space: Space, resolution: int | None = None, batch_size: int | None = None,
                 where: str = "latency table") -> ProxylessError | None:
        """Why this target does not price ``space`` at ``resolution`` and ``batch_size`` (None
        when it does). Spaces compare by their resolved settings, not by the literal overrides."""
        resolution = resolution or space.resolution
        if not self.prices_space(space, where):
            shown = f"space '{space.name}'" + (f" {dict(space.overrides)}" if space.overrides else "")
            return ProxylessError(f"latency table is for {self.describe()}, not {shown}", where,
                                  "build a table for this space")
        if self.resolution != resolution:
            return ProxylessError(f"latency table is for resolution {self.resolution}, not {resolution}",
                                  where, f"build a table at resolution {resolution}")
        if batch_size is not None and self.batch_size != batch_size:
            return ProxylessError(f"latency table is for batch size {self.batch_size}, not {batch_size}",
                                  where, f"build a table with --batch-size {batch_size}")
        return None


def _plain(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


def check_unit(unit: Any, where: str) -> str:
    """``unit`` when it is one this package measures in, else a ProxylessError."""
    if unit not in UNITS:
        raise ProxylessError(f"unknown latency unit {unit!r}", where,
                             f"convert the table to {' or '.join(UNITS)}")
    return unit


@dataclass
class LatencyTable:
    """Measured cost per key, the target it was measured for and where (provenance)."""

    target: TableTarget
    provenance: dict[str, Any]
    entries: dict[str, LatencyStats] = field(default_factory=dict)
    unit: str = "ms"
    statistic: str = "median"
    predictor: dict[str, Any] | None = None
    source: str = "latency table"

    # --- lookups -------------------------------------------------------------------------
    def __contains__(self, key: LayerKey | str) -> bool:
        return str(key) in self.entries

    def missing(self, keys: Iterable[LayerKey | str]) -> list[str]:
        return sorted({str(k) for k in keys} - set(self.entries))

    def require(self, keys: Iterable[LayerKey | str]) -> None:
        """Raise, listing every missing key, unless the table holds all ``keys``."""
        missing = self.missing(keys)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ProxylessError(f"latency table lacks {len(missing)} key(s): {shown}", self.source,
                                 "build the table for this space, resolution and batch size "
                                 "('proxyless latency build') or measure the missing blocks")

    def lookup(self, key: LayerKey | str) -> float:
        """The cost of one key (strict: a missing key is an error, never a default)."""
        stats = self.entries.get(str(key))
        if stats is None:
            self.require([key])
        return stats.value(self.statistic)

    def check_target(self, space: Space, resolution: int | None = None,
                     batch_size: int | None = None) -> None:
        """Refuse a table measured for another space (by resolved settings), resolution or batch size."""
        error = self.target.mismatch(space, resolution, batch_size, self.source)
        if error is not None:
            raise error

    # --- files ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": TABLE_KIND, "schema_version": TABLE_SCHEMA_VERSION, "unit": self.unit,
            "statistic": self.statistic,
            "target": {"space": self.target.space, "space_overrides": dict(self.target.space_overrides),
                       "resolution": self.target.resolution, "batch_size": self.target.batch_size},
            "provenance": dict(self.provenance),
            "entries": {k: self.entries[k].to_dict() for k in sorted(self.entries)},
            "predictor": self.predictor,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic write (temporary file, then rename)."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = "latency table") -> LatencyTable:
        fix = "give a table written by 'proxyless latency build' or 'import'"
        if not isinstance(data, dict) or data.get("kind") != TABLE_KIND:
            raise ProxylessError("not a proxylessnas latency table", where, fix)
        if data.get("schema_version") != TABLE_SCHEMA_VERSION:
            raise ProxylessError(f"unsupported latency table schema_version {data.get('schema_version')!r}",
                                 where, f"this version reads schema_version {TABLE_SCHEMA_VERSION}")
        statistic = data.get("statistic", "median")
        if statistic not in STATISTICS:
            raise ProxylessError(f"unknown statistic '{statistic}'", where, f"use one of {STATISTICS}")
        unit = check_unit(data.get("unit", "ms"), where)
        target = TableTarget.from_dict(data.get("target"), where)
        try:
            entries = {}
            for key, e in data["entries"].items():
                LayerKey.parse(key, where)
                entries[key] = LatencyStats(
                    None if e.get("median") is None else float(e["median"]), float(e["mean"]),
                    float(e["std"]), None if e.get("p10") is None else float(e["p10"]),
                    None if e.get("p90") is None else float(e["p90"]), int(e["count"]))
                if not math.isfinite(entries[key].value(statistic)) or entries[key].value(statistic) < 0:
                    raise ValueError(f"entry {key} is not a finite non-negative number")
            provenance = dict(data.get("provenance") or {})
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
            raise ProxylessError(f"malformed latency table ({err})", where, fix) from None
        predictor = data.get("predictor")
        if predictor is not None and not isinstance(predictor, dict):
            raise ProxylessError("malformed latency table ('predictor' must be an object)", where, fix)
        return cls(target, provenance, entries, unit, statistic, predictor, where)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        return cls.from_dict(read_json(path, "latency table"), str(path))
