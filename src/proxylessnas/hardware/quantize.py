"""Static INT8 quantisation of a timed model: ONNX Runtime's QDQ quantiser, OpenVINO's NNCF and
ExecuTorch's XNNPACK quantiser (PyTorch 2 export quantisation).

Both calibrate activation ranges (min-max) on the inputs given (synthetic ones from
:func:`~proxylessnas.hardware.runtimes.calibration_inputs` when tables are built) and quantise the
weights per output channel, the usual deployment recipe for CNNs on CPUs. The rejected
alternative, dynamic quantisation, leaves convolutions in FP32 in ONNX Runtime: it would price
blocks that no INT8 deployment runs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """The quantisers' advice and progress logs, above ERROR only, for the duration."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def onnxruntime_int8(model: bytes, inputs: Sequence[torch.Tensor]) -> bytes:
    """The ONNX model ``model`` (input ``input``) quantised statically to INT8 in QDQ format:
    per-channel symmetric int8 weights, uint8 activations calibrated by min-max on ``inputs``.

    The model is pre-processed first (ONNX Runtime's constant folding and shape inference), so
    that the folded batch-norm biases are initialisers the quantiser can see."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{"input": x.numpy()} for x in inputs])

        def get_next(self) -> dict[str, Any] | None:
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(prefix="proxyless-int8-") as folder, _quiet_loggers("root"):
        plain, prepared, quantised = (Path(folder) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        plain.write_bytes(model)
        quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantised), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        # no CalibMaxIntermediateOutputs: its fold keeps the last chunk's ranges only (measured with
        # ONNX Runtime 1.32), so the calibrator holds every batch's intermediate outputs until the end
        return quantised.read_bytes()


def nncf_int8(model: Any, inputs: Sequence[torch.Tensor]) -> Any:
    """The OpenVINO model ``model`` quantised by NNCF's post-training quantisation (preset
    ``performance``: symmetric int8 weights per channel and activations), calibrated on ``inputs``."""
    import nncf

    with _quiet_loggers("nncf"), contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(model, nncf.Dataset([x.numpy() for x in inputs]), subset_size=len(inputs),
                             preset=nncf.QuantizationPreset.PERFORMANCE)


def executorch_int8(module: torch.nn.Module, example: torch.Tensor, inputs: Sequence[torch.Tensor]) -> Any:
    """``module`` exported and quantised for XNNPACK (int8 weights per channel, symmetric; int8
    activations calibrated on ``inputs``), as a graph module ready for ``torch.export`` again."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torch.export import export
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(export(module, (example,)).module(), quantizer)
    with torch.no_grad():
        for x in inputs:
            prepared(x)
    return convert_pt2e(prepared)
