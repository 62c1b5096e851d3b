"""``metrics.jsonl``: one JSON object per finished epoch, the record search and training runs keep.

One object per line, in epoch order. Only ``"epoch"`` (an int) is required; the keys listed in
``NUMERIC_KEYS`` hold a number or null where present, and any other key is kept as written.
A search row (:func:`proxylessnas.search.epoch_log.epoch_record`) looks like::

    {"epoch": 3,                      # int, required (counts from 1, as in the log)
     "phase": "search",               # "warmup" | "search"
     "train_loss": 1.21, "train_acc": 0.58,      # weight steps (fractions, not percent)
     "valid_acc": 0.55,               # argmax path on the architecture-validation split
     "expected_latency": 4.1,         # E[LAT] of the current p, in the cost model's unit
     "argmax_latency": 4.3,           # cost of the argmax architecture, same unit
     "target_latency_table": 4.0,     # T in the cost model's unit (table units), same unit
     "latency_unit": "ms",            # the cost model's unit
     "lambda": 0.8,                   # latency weight in force (the controller's lambda)
     "entropy": 5.2,                  # sum over searched layers of -sum_j p_j ln p_j (nats)
     "normalised_entropy": 0.93,      # entropy / sum_l ln K_l, K_l >= 2 (1 uniform, 0 one-hot)
     "mean_max_prob": 0.31,           # mean over layers of max_j p_j
     "argmax_changes": 2,             # layers whose argmax op changed since the epoch before
     "probs": {"s1.b0": [0.3, ...]},  # softmax(alpha) per searched layer, candidate order
     "arch": {"s1.b0": "mb_k3_e3"}}   # argmax op per searched layer

A training row has ``epoch``, ``train_loss``, ``train_top1``, ``test_top1`` and the like
(:func:`proxylessnas.train.run.train_model`). Files written before ``target_latency_table``
hold the same value (table units) as ``target_latency``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.atomic import atomic_write

NUMERIC_KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc", "expected_latency",
                "argmax_latency", "target_latency_table", "target_latency", "lambda", "entropy",
                "normalised_entropy", "mean_max_prob", "argmax_changes")


def check_row(row: Any, where: str) -> dict[str, Any]:
    """``row`` if it is a metrics row (an object with an integer "epoch", numbers under the numeric
    keys, objects under "probs" and "arch"), else a :class:`ProxylessError` naming ``where``."""
    if not isinstance(row, dict):
        raise ProxylessError("metrics line is not a JSON object", where, "write one object per line")
    if not isinstance(row.get("epoch"), int):
        raise ProxylessError("metrics record has no integer 'epoch'", where, "add \"epoch\": N")
    for key in NUMERIC_KEYS:
        if row.get(key) is not None and not isinstance(row[key], (int, float)):
            raise ProxylessError(f"metrics key '{key}' is not a number", where, "write a number or null")
    for key in ("probs", "arch"):
        if key in row and not isinstance(row[key], dict):
            raise ProxylessError(f"metrics key '{key}' is not an object", where,
                                 f"write {{label: ...}} for '{key}'")
    return row


def read_metrics(path: str | os.PathLike, *, required: bool = True,
                 through_epoch: int | None = None) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl file, checked, in file order (blank lines skipped).

    ``required=False``: a missing or empty file reads as no rows (a run that has not finished an
    epoch yet). ``through_epoch=k``: only the rows with ``epoch <= k`` (the epochs a checkpoint
    has finished)."""
    path = Path(path)
    if not path.is_file():
        if not required:
            return []
        raise ProxylessError("metrics file not found", str(path), "run 'proxyless search' first")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ProxylessError(f"malformed JSON: {err.msg}", where, "fix or remove the line") from None
        rows.append(check_row(row, where))
    if not rows and required:
        raise ProxylessError("metrics file is empty", str(path), "let the search finish an epoch")
    return [row for row in rows if through_epoch is None or row["epoch"] <= through_epoch]


def append_metrics(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row as a line (checked first; flushed, so that a crash keeps whole lines)."""
    check_row(row, str(path))
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()


def write_metrics(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """The whole file, atomically: ``rows`` one per line (none: an empty file)."""
    atomic_write(path, "".join(json.dumps(row) + "\n" for row in rows))


def keep_metrics(path: str | os.PathLike, through_epoch: int) -> list[dict[str, Any]]:
    """Cut the file back to the rows of the first ``through_epoch`` epochs, the ones a resumed
    checkpoint has finished (a crash between a row and its checkpoint would leave a duplicate),
    and return them."""
    rows = read_metrics(path, required=False, through_epoch=through_epoch)
    write_metrics(path, rows)
    return rows
