"""Import of the reference release's YAML latency table (``mobile_trim.yaml``).

Its keys, and what they become::

    Conv-input:224x224x3-output:112x112x32            -> stem (3x3, stride from the shapes)
    expanded_conv-input:HxWxC-output:HxWxC-expand:E-kernel:K-stride:S-idskip:0|1 -> mbconv
    Conv_1-input:7x7x320-output:7x7x1280              -> head (1x1)
    Logits-input:7x7x1280-output:1000                 -> classifier (pool + linear)

Values are ``{count, mean, var}`` in ms; the file has no median or percentiles, so the imported
table prices with the mean (``statistic: "mean"``) and std = sqrt(var). It is keyed by shapes
only, so its target names no space: strict key lookups decide what it can price. A top-level
``unit`` key, if present, must be one the package knows (ms), as in a JSON table; a YAML file with
a ``kind`` key is read as our own table format, with every check of a JSON table.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.keys import LayerKey
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget, check_unit

_SHAPE = r"(\d+)x(\d+)x(\d+)"
_CONV_RE = re.compile(rf"^(Conv|Conv_1)-input:{_SHAPE}-output:{_SHAPE}$")
_LOGITS_RE = re.compile(rf"^Logits-input:{_SHAPE}-output:(\d+)$")
_BLOCK_RE = re.compile(rf"^expanded_conv-input:{_SHAPE}-output:{_SHAPE}-expand:(\d+)-kernel:(\d+)"
                       r"-stride:(\d+)-idskip:([01])$")


def convert_legacy_key(text: str, where: str = "legacy table") -> LayerKey:
    """One reference key as a :class:`LayerKey`."""
    if m := _CONV_RE.match(text):
        i, o = tuple(map(int, m.group(2, 3, 4))), tuple(map(int, m.group(5, 6, 7)))
        if m.group(1) == "Conv":
            stride = max(1, round(i[0] / o[0]))
            return LayerKey("stem", i, o, 3, 1, stride, False)
        return LayerKey("head", i, o, 1, 1, 1, False)
    if m := _LOGITS_RE.match(text):
        return LayerKey("classifier", tuple(map(int, m.group(1, 2, 3))), (1, 1, int(m.group(4))))
    if m := _BLOCK_RE.match(text):
        g = list(map(int, m.groups()))
        return LayerKey("mbconv", tuple(g[0:3]), tuple(g[3:6]), g[7], g[6], g[8], g[9] == 1)
    raise ProxylessError(f"unknown key '{text}' in reference latency table", where,
                         "give the reference release's YAML table (keys Conv, expanded_conv, "
                         "Conv_1, Logits)")


def import_legacy_yaml(path: str | os.PathLike, batch_size: int = 1) -> LatencyTable:
    """Read the reference YAML table into a :class:`LatencyTable` (statistic ``mean``)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ProxylessError("latency table not found", where, "check the path")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as err:
        raise ProxylessError(f"malformed YAML ({type(err).__name__})", where, "fix the YAML syntax") from None
    if isinstance(data, dict) and "kind" in data:
        return LatencyTable.from_dict(data, where)
    if isinstance(data, dict) and "unit" in data:
        data = dict(data)
        check_unit(data.pop("unit"), where)
    if not isinstance(data, dict) or not data:
        raise ProxylessError("not a reference latency table", where,
                             "give a YAML mapping of keys to {count, mean, var}")
    entries: dict[str, LatencyStats] = {}
    resolution = None
    for text, value in data.items():
        key = convert_legacy_key(str(text), where)
        if key.kind == "stem":
            resolution = key.input[0]
        if not isinstance(value, dict) or not {"mean", "var", "count"} <= set(value):
            raise ProxylessError(f"entry '{text}' lacks count, mean or var", where,
                                 "give {count, mean, var} for every key")
        try:
            mean, var, count = float(value["mean"]), float(value["var"]), int(value["count"])
        except (TypeError, ValueError, OverflowError):
            raise ProxylessError(f"entry '{text}' is not numeric", where, "fix the entry") from None
        if not (math.isfinite(mean) and mean >= 0 and math.isfinite(var) and var >= 0 and count >= 1):
            raise ProxylessError(f"entry '{text}' has a negative or non-finite value or no samples", where,
                                 "fix the entry")
        entries[str(key)] = LatencyStats(None, mean, math.sqrt(var), None, None, count)
    if resolution is None:
        raise ProxylessError("reference table has no stem ('Conv-input:...') entry", where,
                             "the input resolution is read from the stem key")
    provenance: dict[str, Any] = {"device": "unknown (reference release's phone table)",
                                  "backend": "reference-yaml", "imported_from": path.name,
                                  "note": "no median published: lookups use the mean"}
    return LatencyTable(TableTarget(None, {}, resolution, batch_size), provenance, entries,
                        unit="ms", statistic="mean", source=where)
