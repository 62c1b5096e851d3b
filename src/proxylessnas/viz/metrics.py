"""The per-epoch metrics record of a search run (``RUN_DIR/metrics.jsonl``) and its reader.

One JSON object per line, one line per epoch, appended as the search goes::

    {"epoch": 3,                      # int, required (the search counts from 1)
     "phase": "search",               # "warmup" | "search"
     "train_loss": 1.21, "train_acc": 0.58,      # weight steps (fractions, not percent)
     "valid_loss": 1.30, "valid_acc": 0.55,      # architecture-validation split
     "expected_latency": 4.1,         # E[LAT] of the current p, cost-model unit
     "argmax_latency": 4.3,           # cost of the argmax architecture
     "target_latency": 4.0,           # T, or null without a target
     "latency_unit": "ms",
     "lambda": 0.8,                   # latency weight in force (the controller's lambda)
     "entropy": 5.2,                  # sum over searched layers of -sum_j p_j ln p_j (nats)
     "normalised_entropy": 0.93,      # entropy / sum_l ln K_l, K_l >= 2 (1 uniform, 0 one-hot)
     "mean_max_prob": 0.31,           # mean over layers of max_j p_j
     "argmax_changes": 2,             # layers whose argmax op changed since the epoch before
     "probs": {"s1.b0": [0.3, ...]},  # softmax(alpha) per searched layer, candidate order
     "arch": {"s1.b0": "mb_k3_e3"}}   # argmax op per searched layer

Only ``epoch`` is required; plots skip what a record lacks. Keys beyond these are kept.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proxylessnas.errors import ProxylessError

NUMERIC_KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc", "expected_latency",
                "argmax_latency", "target_latency", "lambda", "entropy", "normalised_entropy",
                "mean_max_prob", "argmax_changes")


def entropy(probs: Sequence[Sequence[float]]) -> float:
    """Sum over layers of -sum_j p_j ln p_j (nats)."""
    return -sum(p * math.log(p) for layer in probs for p in layer if p > 0)


def _check_record(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ProxylessError("metrics line is not a JSON object", where, "write one object per line")
    if not isinstance(record.get("epoch"), int):
        raise ProxylessError("metrics record has no integer 'epoch'", where, "add \"epoch\": N")
    for key in NUMERIC_KEYS:
        if record.get(key) is not None and not isinstance(record[key], (int, float)):
            raise ProxylessError(f"metrics key '{key}' is not a number", where, "write a number or null")
    for key in ("probs", "arch"):
        if key in record and not isinstance(record[key], dict):
            raise ProxylessError(f"metrics key '{key}' is not an object", where,
                                 f"write {{label: ...}} for '{key}'")
    return record


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file, validated, in file order (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ProxylessError("metrics file not found", str(path), "run 'proxyless search' first")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ProxylessError(f"malformed JSON: {err.msg}", where, "fix or remove the line") from None
        records.append(_check_record(record, where))
    if not records:
        raise ProxylessError("metrics file is empty", str(path), "let the search finish an epoch")
    return records


def append_metrics(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as a line (validated first; flushed so a crash keeps whole lines)."""
    _check_record(record, str(path))
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
