"""Tables for remote devices: export every unique block as ONNX, import the timings back.

``export_ops`` writes ``DIR/<n>.onnx`` (one block each, BN folded, input named ``input`` of
shape (batch, C, H, W)) and ``DIR/manifest.json``::

    {"kind": "proxylessnas.ops_manifest", "schema_version": 1,
     "target": {"space": .., "space_overrides": .., "resolution": .., "batch_size": ..},
     "ops": [{"key": "<LayerKey>", "file": "000.onnx", "input_shape": [1, 3, 32, 32]}, ...]}

Time each file on the device, then ``import_measurements`` reads either a CSV with a ``key``
column and one ``ms`` sample per row (several rows per key allowed) or a ``median`` column
(optional ``mean, std, p10, p90, count``), or a JSON object ``{key: [samples, ...]}`` or
``{key: {"median": ..}}``. Every key of the manifest must be present; extra keys are errors.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.keys import LayerKey, space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.measure import build_block, export_onnx_bytes, key_input_shape
from proxylessnas.runtime.atomic import write_json_atomic
from proxylessnas.space.arch import read_json
from proxylessnas.space.spec import SearchSpace

MANIFEST_KIND = "proxylessnas.ops_manifest"
MANIFEST_SCHEMA_VERSION = 1


def export_ops(space: SearchSpace, out_dir: str | os.PathLike, batch_size: int = 1,
               resolution: int | None = None) -> Path:
    """Write one ONNX file per unique block and the manifest into ``out_dir``, a new or empty folder
    (its files are never replaced); returns the manifest path."""
    import torch

    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise ProxylessError("the ops folder is not empty", str(out_dir),
                             "give a new or empty folder: export-ops writes 000.onnx ... and manifest.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = TableTarget.of(space, resolution, batch_size)
    ops = []
    for index, key in enumerate(space_keys(space, resolution).unique()):
        shape = key_input_shape(key, batch_size)
        data = export_onnx_bytes(build_block(key, space.bn.momentum, space.bn.eps), torch.zeros(*shape))
        name = f"{index:03d}.onnx"
        (out_dir / name).write_bytes(data)
        ops.append({"key": str(key), "file": name, "input_shape": list(shape)})
    manifest = {"kind": MANIFEST_KIND, "schema_version": MANIFEST_SCHEMA_VERSION,
                "target": {"space": target.space, "space_overrides": target.space_overrides,
                           "resolution": target.resolution, "batch_size": target.batch_size},
                "ops": ops}
    return write_json_atomic(out_dir / "manifest.json", manifest)


def read_manifest(path: str | os.PathLike) -> tuple[TableTarget, list[str]]:
    data = read_json(path, "ops manifest")
    where = str(path)
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        raise ProxylessError("not an ops manifest", where, "give the manifest.json written by export-ops")
    target = TableTarget.from_dict(data.get("target"), where)
    try:
        keys = [str(LayerKey.parse(op["key"], where)) for op in data["ops"]]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ProxylessError(f"malformed ops manifest ({err})", where, "re-run export-ops") from None
    return target, keys


def _number(value: Any, where: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ProxylessError(f"not a number: {value!r}", where, "give latencies in ms") from None
    if not math.isfinite(result) or result < 0:
        raise ProxylessError(f"not a finite non-negative latency: {value!r}", where, "give latencies in ms")
    return result


def _summary(row: dict[str, Any], where: str) -> LatencyStats:
    median = _number(row["median"], where)
    get = {k: _number(row[k], where) for k in ("mean", "std", "p10", "p90")
           if row.get(k) not in (None, "")}
    count = int(_number(row["count"], where)) if row.get("count") not in (None, "") else 1
    return LatencyStats(median, get.get("mean", median), get.get("std", 0.0), get.get("p10"),
                        get.get("p90"), count)


def _csv_rows(path: Path) -> tuple[set[str], list[dict[str, Any]]]:
    """(columns, rows) of a CSV file; bytes that are not UTF-8 CSV text are a ProxylessError."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return set(reader.fieldnames or []), list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ProxylessError(f"unreadable CSV ({type(err).__name__})", str(path),
                             "give a UTF-8 text CSV with a header such as 'key,ms'") from None


def _read_measurements(path: Path) -> dict[str, LatencyStats]:
    where = str(path)
    if not path.is_file():
        raise ProxylessError("measurements file not found", where, "check the path")
    samples: dict[str, list[float]] = {}
    summaries: dict[str, LatencyStats] = {}
    if path.suffix.lower() == ".csv":
        columns, rows = _csv_rows(path)
        if "key" not in columns or not ({"ms", "median"} & columns):
            raise ProxylessError("CSV needs a 'key' column and an 'ms' or 'median' column", where,
                                 "write a header such as 'key,ms'")
        for line, row in enumerate(rows, start=2):
            at = f"{where}: line {line}"
            key = str(LayerKey.parse(row["key"] or "", at))
            if "median" in columns:
                if key in summaries:
                    raise ProxylessError(f"duplicate key {key}", at, "give one summary row per key")
                summaries[key] = _summary(row, at)
            else:
                samples.setdefault(key, []).append(_number(row["ms"], at))
    else:
        data = read_json(path, "measurements file")
        data = data.get("measurements", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ProxylessError("measurements must be a JSON object keyed by layer key", where,
                                 '{"<key>": [ms, ...]} or {"<key>": {"median": ms}}')
        for text, value in data.items():
            at = f"{where}: {text}"
            key = str(LayerKey.parse(text, at))
            if isinstance(value, list) and value:
                samples[key] = [_number(v, at) for v in value]
            elif isinstance(value, dict) and "median" in value:
                summaries[key] = _summary(value, at)
            else:
                raise ProxylessError("entry must be a non-empty list of ms or an object with 'median'",
                                     at, "fix the entry")
    entries = {k: LatencyStats.from_samples(v) for k, v in samples.items()}
    entries.update(summaries)
    return entries


def import_measurements(measurements: str | os.PathLike, manifest: str | os.PathLike,
                        provenance: dict[str, Any] | None = None) -> LatencyTable:
    """A table from device timings of the blocks listed in ``manifest`` (all keys required)."""
    target, keys = read_manifest(manifest)
    path = Path(measurements)
    entries = _read_measurements(path)
    table = LatencyTable(target, {"backend": "imported", "imported_from": path.name,
                                  **(provenance or {})}, entries, source=str(path))
    table.require(keys)
    extra = sorted(set(entries) - set(keys))
    if extra:
        raise ProxylessError(f"{len(extra)} key(s) not in the manifest: {', '.join(extra[:3])}", str(path),
                             "measure the blocks of this manifest only")
    return table
