"""The model card: a JSON file beside an exported model saying what it is and how it measures.

Fields: name, arch (op per layer and the net config), params, MACs (at the net's resolution),
input shape, dataset and accuracy (when the source is a training run), export format and parity,
the weights file and its digest, measured latency per backend (when measured), and the versions of
everything involved.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import Any

import torch

from proxylessnas.nets.net import ProxylessNet
from proxylessnas.nets.profile import count_params_macs
from proxylessnas.version import __version__

CARD_KIND = "proxylessnas.model_card"
CARD_SCHEMA_VERSION = 1


def versions() -> dict[str, str]:
    found = {"proxylessnas": __version__, "torch": torch.__version__, "python": platform.python_version()}
    for module in ("onnx", "onnxruntime", "safetensors"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            pass
    return found


def measure_latency(model: ProxylessNet, backends: list[str], *, batch_size: int = 1, threads: int = 1,
                    rounds: int = 10) -> dict[str, dict[str, Any]]:
    """Median latency (ms) per backend (``torch-cpu``, ``torchscript-cpu``, ``onnxruntime-cpu``,
    ``torch-cuda``), timed with the latency-table builder's interleaved, outlier-trimmed method."""
    from proxylessnas.hardware.measure import Backend, measure_interleaved, prepare_runner

    config = model.net_config
    shape = (batch_size, config.in_chs, config.resolution, config.resolution)
    chosen = []
    for label in backends:
        # the device is after the last dash: a backend may have one too (onnxruntime-int8-cpu)
        name, _, device = label.rpartition("-") if "-" in label else (label, "", "cpu")
        chosen.append(Backend(name=name, device=device or "cpu", batch_size=batch_size,
                              threads=threads if (device or "cpu") == "cpu" else 1))
    runners = [prepare_runner(model, shape, backend) for backend in chosen]
    stats = measure_interleaved(runners, rounds=rounds, threads=threads)
    return {backend.label: {"median_ms": s.median, "p10_ms": s.p10, "p90_ms": s.p90, "samples": s.count,
                            **{k: v for k, v in backend.provenance().items()
                               if k in ("device", "backend_version", "batch_size", "threads", "clock")}}
            for backend, s in zip(chosen, stats)}


def model_card(model: ProxylessNet, *, source: str, exports: dict[str, dict] | None = None,
               weights_file: str | None = None, dataset: str | None = None,
               accuracy: dict[str, float] | None = None, latency: dict[str, dict] | None = None,
               arch: dict | None = None, normalisation: dict | None = None,
               weights_sha256: str | None = None) -> dict[str, Any]:
    """The card of ``model``; ``normalisation`` is {"mean": [...], "std": [...]} on the 0..1 scale;
    ``weights_sha256`` identifies the weights (:func:`proxylessnas.export.fileset.weights_digest`)."""
    config = model.net_config
    params, macs = count_params_macs(config)
    return {
        "kind": CARD_KIND,
        "schema_version": CARD_SCHEMA_VERSION,
        "name": config.name or source,
        "source": source,
        "input": {"shape": ["batch", config.in_chs, config.resolution, config.resolution],
                  "dtype": "float32", "layout": "NCHW", "normalisation": normalisation},
        "num_classes": config.num_classes,
        "params": params,
        "macs": macs,
        "arch": arch,
        "ops": config.op_labels(),
        "net_config": model.config(),
        "dataset": dataset,
        "accuracy": accuracy,
        "exports": exports or {},
        "weights": weights_file,
        "weights_sha256": weights_sha256,
        "latency": latency if latency is not None else "not measured (run with --latency)",
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
