"""``get_cost_model(hardware, space)``: one entry point from a ``--hardware`` value to a cost model.

``hardware`` is ``cpu`` (torch eager), ``cuda`` (torch, CUDA events), a CPU runtime by its
backend name (``onnxruntime``, ``onnxruntime-int8``, ``openvino``, ``openvino-int8``,
``executorch``, ``executorch-int8``: ``hardware/runtimes.py``), ``flops`` (MMACs), ``params``
(Mparams), or a path to a table (our JSON, or the reference release's YAML). Measured targets
use a cached table, one per (machine, backend, space, resolution, batch size, threads), in
``$PROXYLESS_CACHE/latency/`` or ``~/.cache/proxylessnas/latency/``: built on first use
(resumable), reused afterwards while its identity (``hardware/identity.py``: runtime version,
CPU, precision, batch, threads) matches. A table with a fitted predictor yields the
predictor-corrected model. Chains and graph spaces (``space/graph.py``) alike: a graph's table
holds the keys of its edges and head (``hardware/keys.py``); only MACs/params of a graph use
their own model (``graph_cost.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import singledispatch
from pathlib import Path

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.cost import FlopsCostModel, KeyCostModel, TableCostModel
from proxylessnas.hardware.graph_cost import GraphFlopsCostModel
from proxylessnas.hardware.identity import check_identity
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.lut import LatencyTable
from proxylessnas.hardware.measure import BACKENDS, TORCH_BACKENDS, Backend, device_name
from proxylessnas.hardware.timed_weights import TIMED_BATCHNORM
from proxylessnas.space.arch import Space
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.spec import SearchSpace

MEASURED_TARGETS = {"cpu": ("torch", "cpu"), "cuda": ("torch", "cuda"),
                    **{name: (name, "cpu") for name in BACKENDS if name not in TORCH_BACKENDS}}
ANALYTIC_TARGETS = ("flops", "params")


def cache_root() -> Path:
    """``$PROXYLESS_CACHE/latency`` or ``~/.cache/proxylessnas/latency``."""
    base = os.environ.get("PROXYLESS_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "proxylessnas"
    return root / "latency"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "unknown"


def space_fingerprint(space: Space) -> str:
    """A short hash of what the space resolves to (the same however its overrides were spelled)."""
    text = json.dumps({**space.to_dict(), "overrides": {}}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def cached_table_path(space: Space, backend: Backend, resolution: int | None = None) -> Path:
    """Where the table for this machine, backend, space, resolution and batch size lives."""
    resolution = resolution or space.resolution
    name = (f"{_slug(device_name(backend.device))}-{backend.label}-{space.name}-"
            f"{space_fingerprint(space)}-r{resolution}-b{backend.batch_size}.json")
    return cache_root() / name


def backend_for(hardware: str, batch_size: int | None = 1, threads: int | None = None) -> Backend:
    if hardware not in MEASURED_TARGETS:
        raise ProxylessError(f"unknown hardware '{hardware}'", "--hardware",
                             f"use one of {', '.join([*MEASURED_TARGETS, *ANALYTIC_TARGETS])} "
                             "or a path to a latency table")
    name, device = MEASURED_TARGETS[hardware]
    return Backend(name, device, batch_size or 1, threads or 1)


def table_file(hardware: str) -> Path:
    """The table file a ``--hardware`` value names; an analytic target, a folder or a path that does
    not exist is an error saying which."""
    targets = ", ".join([*MEASURED_TARGETS, *ANALYTIC_TARGETS])
    if hardware in ANALYTIC_TARGETS:
        raise ProxylessError(f"'{hardware}' is counted, not measured: it has no latency table", "--hardware",
                             f"use one of {', '.join(MEASURED_TARGETS)} or a latency table path")
    path = Path(hardware)
    if not path.exists():
        raise ProxylessError(f"unknown hardware '{hardware}'", "--hardware",
                             f"use one of {targets} or a path to an existing latency table")
    if path.is_dir():
        raise ProxylessError(f"'{hardware}' is a folder, not a latency table", "--hardware",
                             "give the table's JSON or YAML file")
    return path


def load_table(path: str | os.PathLike) -> LatencyTable:
    """Our JSON table, or the reference release's YAML (by extension)."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        from proxylessnas.hardware.legacy import import_legacy_yaml

        return import_legacy_yaml(path)
    return LatencyTable.load(path)


def table_model(table: LatencyTable, batch_size: int | None = None,
                use_predictor: bool = True) -> TableCostModel:
    if use_predictor and table.predictor is not None:
        from proxylessnas.hardware.predictor import PredictedCostModel

        return PredictedCostModel(table, batch_size=batch_size)
    return TableCostModel(table, batch_size)


def get_table(hardware: str, space: Space, *, batch_size: int | None = 1, threads: int | None = None,
              progress: bool = True, build: bool = True, require_all_keys: bool = True,
              allow_mismatch: bool = False) -> LatencyTable:
    """The table behind a measured target or a path, checked against ``space`` (and, with
    ``require_all_keys``, holding every key of the space) and against the targeted setting: a
    measured target's cached table against its whole identity here (runtime version, CPU,
    precision, batch size, threads), a table file against the ``batch_size`` and ``threads`` given
    (None: any). A difference is an error unless ``allow_mismatch`` (then a warning)."""
    if hardware in MEASURED_TARGETS:
        backend = backend_for(hardware, batch_size, threads)
        backend.check_available()  # the target is this machine's runtime: its version is the table's identity
        path = cached_table_path(space, backend)
        table = LatencyTable.load(path) if path.exists() else None
        stale = table is not None and table.provenance.get("timed_batchnorm") != TIMED_BATCHNORM
        if stale:  # a cache timed with fresh BatchNorm priced another graph on some runtimes
            if not build:
                raise ProxylessError("the cached latency table was timed with fresh BatchNorm layers",
                                     str(path), "delete it (it is measured again on first use)")
            table = None
        if table is not None:
            check_identity(table.provenance, backend.provenance(), str(path), allow_mismatch=allow_mismatch,
                           fix="delete the cached table (it is measured again on first use)")
        keys = space_keys(space).unique()
        if table is None or table.missing(keys):
            if not build:
                raise ProxylessError("no cached latency table", str(path),
                                     f"build it: proxyless latency build --space {space.name} "
                                     f"--backend {backend.name} --device {backend.device}")
            from proxylessnas.hardware.build import build_lut

            table = build_lut(space, backend, path, progress=progress, overwrite=stale)
    else:
        table = load_table(table_file(hardware))
        recorded = {"batch_size": table.target.batch_size, "threads": table.provenance.get("threads")}
        wanted = {"batch_size": batch_size or recorded["batch_size"],
                  "threads": threads if threads and recorded["threads"] else recorded["threads"]}
        check_identity(recorded, wanted, table.source, allow_mismatch=allow_mismatch,
                       fix="build a table for this setting ('proxyless latency build')")
    table.check_target(space)
    if require_all_keys:
        table.require(space_keys(space).unique())
    return table


def get_cost_model(hardware: str, space: Space, *, batch_size: int | None = 1, threads: int | None = None,
                   progress: bool = True, require_all_keys: bool = True,
                   allow_mismatch: bool = False) -> KeyCostModel:
    """A cost model for ``space`` on ``hardware`` (see module docstring); strict about keys and
    about the table's setting (:func:`get_table`; ``allow_mismatch`` accepts another one).

    ``require_all_keys=False`` accepts a table that prices only some architectures of the space
    (to predict one arch); a lookup of a missing key is still an error."""
    return _cost_model_for(space, hardware, batch_size=batch_size, threads=threads, progress=progress,
                           require_all_keys=require_all_keys, allow_mismatch=allow_mismatch)


@singledispatch
def _cost_model_for(space: SearchSpace, hardware: str, *, batch_size: int | None, threads: int | None,
                    progress: bool, require_all_keys: bool, allow_mismatch: bool) -> KeyCostModel:
    if hardware == "flops":
        return FlopsCostModel("macs")
    if hardware == "params":
        return FlopsCostModel("params")
    table = get_table(hardware, space, batch_size=batch_size, threads=threads, progress=progress,
                      require_all_keys=require_all_keys, allow_mismatch=allow_mismatch)
    return table_model(table, table.target.batch_size)  # its setting is checked (or allowed) above


@_cost_model_for.register
def _graph_cost_model(space: GraphSpace, hardware: str, *, batch_size: int | None, threads: int | None,
                      progress: bool, require_all_keys: bool, allow_mismatch: bool) -> KeyCostModel:
    if hardware in ANALYTIC_TARGETS:
        return GraphFlopsCostModel("macs" if hardware == "flops" else "params")
    table = get_table(hardware, space, batch_size=batch_size, threads=threads, progress=progress,
                      require_all_keys=require_all_keys, allow_mismatch=allow_mismatch)
    return table_model(table, table.target.batch_size)  # its setting is checked (or allowed) above
