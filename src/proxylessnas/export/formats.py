"""ONNX (dynamic batch axis) and TorchScript export, each written only after a parity check.

Both write to a temporary file beside the target, reload that file, compare its outputs with
the eager model's (:mod:`proxylessnas.export.parity`) and move it into place with
``os.replace`` only when the check passes; otherwise the temporary file is deleted and a
:class:`ProxylessError` reports the difference. A model whose weights hold NaN or infinite values
is refused before anything is written, and one process writes a given file at a time
(:func:`~proxylessnas.runtime.runfolder_lock.hold_output_file`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.export.parity import PARITY_TOLERANCE, ParityReport, check_parity, random_inputs
from proxylessnas.runtime.atomic import atomic_replace
from proxylessnas.runtime.finite import require_finite_weights
from proxylessnas.runtime.runfolder_lock import hold_output_file

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "onnx-int8": ".onnx"}
ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    parity: ParityReport


def _write_checked(model: nn.Module, path: Path, fmt: str, write: Callable[[Path], None],
                   load: Callable[[Path], Callable], in_chs: int, resolution: int,
                   tolerance: float) -> ExportResult:
    require_finite_weights(model, str(path), f"no {fmt} file written; export a model whose training did "
                                             "not diverge")
    with hold_output_file(path, f"{fmt} export"), atomic_replace(path, suffix=SUFFIXES[fmt]) as temporary:
        write(temporary)
        parity = check_parity(model, load(temporary), random_inputs(in_chs, resolution), tolerance)
        if not parity.passed:  # raised inside the block: the temporary file goes, ``path`` stays
            raise parity_error(parity, fmt, path)
    return ExportResult(path, fmt, parity)


def parity_error(parity: ParityReport, fmt: str, path: Path) -> ProxylessError:
    """Why a parity check failed, as one line: NaN/infinite outputs first, then the difference."""
    if parity.nonfinite_eager:
        return ProxylessError(f"the model's own outputs hold {parity.nonfinite_eager} NaN or infinite "
                              "value(s) on random inputs", str(path),
                              f"no {fmt} file written; its weights overflow: export a model whose training "
                              "did not diverge")
    if parity.nonfinite_exported:
        return ProxylessError(f"{fmt} outputs hold {parity.nonfinite_exported} NaN or infinite value(s) "
                              "where eager's are finite", str(path),
                              "not written; report the model config, or try another opset/format")
    return ProxylessError(f"{fmt} output differs from eager by {parity.max_abs_diff:.3g} "
                          f"(> {parity.tolerance:g})", str(path),
                          "not written; report the model config, or try another opset/format")


def export_onnx(model: nn.Module, path: str | os.PathLike, *, in_chs: int, resolution: int,
                tolerance: float = PARITY_TOLERANCE, opset: int = ONNX_OPSET) -> ExportResult:
    """ONNX with input ``input`` (batch, C, H, W), output ``logits``, dynamic batch axis; checked
    with ONNX Runtime (CPU) on batches of 1 and 3.

    The TorchScript-based exporter (``dynamo=False``) is used: it handles these static
    conv nets directly and its ``dynamic_axes`` gives a symbolic batch dimension.
    """
    model = model.eval()
    example = torch.randn(2, in_chs, resolution, resolution)

    def write(target: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(target), dynamo=False, input_names=["input"],
                              output_names=["logits"], opset_version=opset, do_constant_folding=True,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    def load(target: Path) -> Callable:
        session = onnx_session(target)
        return lambda x: session.run(["logits"], {"input": x.numpy()})[0]

    return _write_checked(model, Path(path), "onnx", write, load, in_chs, resolution, tolerance)


def onnx_session(path: Path):
    """An ONNX Runtime CPU session of ``path`` (warnings off), or a one-line error without it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ProxylessError("onnxruntime is not installed", "export onnx",
                             "pip install onnxruntime (needed for the parity check)") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_torchscript(model: nn.Module, path: str | os.PathLike, *, in_chs: int, resolution: int,
                       tolerance: float = PARITY_TOLERANCE) -> ExportResult:
    """TorchScript by tracing (the net has no data-dependent control flow), checked after
    ``torch.jit.load`` of the written file on batches of 1 and 3."""
    model = model.eval()
    example = torch.randn(2, in_chs, resolution, resolution)

    def write(target: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (example,))
            torch.jit.save(traced, str(target))

    def load(target: Path) -> Callable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(str(target), map_location="cpu").eval()
        return loaded

    return _write_checked(model, Path(path), "torchscript", write, load, in_chs, resolution, tolerance)


def export_model(model: nn.Module, path: str | os.PathLike, format: str, *, in_chs: int, resolution: int,
                 tolerance: float = PARITY_TOLERANCE) -> ExportResult:
    """Export ``model`` as ``format`` (onnx | torchscript) with the parity check."""
    if format not in FORMATS:
        raise ProxylessError(f"unknown export format '{format}'", "--format",
                             f"use one of {', '.join(FORMATS)}")
    exporter = export_onnx if format == "onnx" else export_torchscript
    return exporter(model.cpu().float(), path, in_chs=in_chs, resolution=resolution, tolerance=tolerance)
