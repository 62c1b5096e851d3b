"""Build a latency table: time every unique block of a space on one backend.

The unique keys are measured in chunks; inside a chunk the blocks are interleaved round by
round (see :func:`measure_interleaved`), so a burst of load from another process spreads over
the chunk instead of landing on one key. The repeat count per key is chosen from a quick
estimate so that each key gets about ``seconds_per_key`` of timing (at least ``min_samples``).
After every chunk the partial table is saved atomically; running the build again with the same
output resumes from it.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.keys import LayerKey, space_keys
from proxylessnas.hardware.lut import LatencyTable, TableTarget
from proxylessnas.hardware.measure import (
    Backend,
    build_block,
    estimate_ms,
    key_input_shape,
    measure_interleaved,
    prepare_runner,
)
from proxylessnas.progress import progress_bar
from proxylessnas.runtime.runfolder_lock import hold_output_file
from proxylessnas.space.spec import SearchSpace

# one table, one setting: a resume never mixes runtime versions (nor fresh and trained-like BatchNorm)
PROVENANCE_MATCH = ("backend", "backend_version", "device", "device_type", "batch_size", "threads", "dtype",
                    "clock", "timed_batchnorm")


def _compatible(existing: LatencyTable, space: SearchSpace, target: TableTarget,
                backend: Backend) -> str | None:
    """Why ``existing`` cannot be resumed for this build (None when it can)."""
    mismatch = existing.target.mismatch(space, target.resolution, target.batch_size, existing.source)
    if mismatch is not None:
        return f"it is for {existing.target.describe()}, not {target.describe()}"
    wanted = backend.provenance()
    for field in PROVENANCE_MATCH:
        if existing.provenance.get(field) != wanted.get(field):
            return f"its {field} is {existing.provenance.get(field)!r}, not {wanted.get(field)!r}"
    return None


def build_lut(space: SearchSpace, backend: Backend, out: str | os.PathLike | None = None, *,
              resolution: int | None = None, seconds_per_key: float = 1.0, min_samples: int = 40,
              rounds: int = 24, chunk_size: int = 8, progress: bool = True,
              overwrite: bool = False, keys: list[LayerKey] | None = None) -> LatencyTable:
    """Measure every unique key of ``space`` (or ``keys``) on ``backend``; save to ``out``.

    An existing ``out`` for the same target and backend is resumed (a complete one is returned
    untouched); one for another target is an error unless ``overwrite``. ``out`` is locked for the build
    (:func:`~proxylessnas.runtime.runfolder_lock.hold_output_file`): a second build of it is refused.
    """
    backend.check_available()
    held = contextlib.nullcontext() if out is None else hold_output_file(out, "latency table")
    with held:  # one builder per table file: a second one would interleave its timings
        target = TableTarget.of(space, resolution, backend.batch_size)
        wanted = keys if keys is not None else space_keys(space, resolution).unique()
        table = LatencyTable(target, backend.provenance(), {}, source=str(out or "latency table"))
        if out is not None and Path(out).exists() and not overwrite:
            existing = LatencyTable.load(out)
            reason = _compatible(existing, space, target, backend)
            if reason is not None:
                raise ProxylessError(f"existing table cannot be resumed: {reason}", str(out),
                                     "choose another --out, or pass --overwrite to replace it")
            if not existing.missing(wanted):
                return existing  # complete: nothing to measure, and the file stays as it was
            table.entries.update(existing.entries)
            table.predictor = existing.predictor
        todo = [k for k in wanted if str(k) not in table.entries]
        table.provenance.update({"complete": not todo, "keys": len(wanted),
                                 "method": {"seconds_per_key": seconds_per_key, "min_samples": min_samples,
                                            "rounds": rounds, "chunk_size": chunk_size,
                                            "outliers": "dropped beyond 3 IQR", "statistic": "median"}})
        bar = progress_bar(len(wanted), initial=len(wanted) - len(todo), desc=f"latency {backend.label}",
                           unit="block", enabled=progress)
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            runners = [prepare_runner(build_block(k, space.bn.momentum, space.bn.eps),
                                      key_input_shape(k, backend.batch_size), backend) for k in chunk]
            estimate = max(estimate_ms(r, backend.threads) for r in runners)
            per_round = max(1, math.ceil(max(min_samples / rounds,
                                              seconds_per_key * 1e3 / max(estimate, 1e-3) / rounds)))
            per_round = min(per_round, 200)
            stats = measure_interleaved(runners, rounds=rounds, per_round=per_round,
                                        threads=backend.threads, seed=start)
            for key, s in zip(chunk, stats):
                table.entries[str(key)] = s
            table.provenance["complete"] = len(table.missing(wanted)) == 0
            if out is not None:
                table.save(out)
            bar.update(len(chunk))
        bar.close()
        if out is not None and not todo:
            table.save(out)
        return table

