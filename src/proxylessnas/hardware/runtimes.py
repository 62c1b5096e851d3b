"""The runtimes a latency table can be measured on, and how a module is made ready to run on each.

``torch`` and ``torchscript`` come with the package; the others are optional extras, each a
one-line error naming its extra when its package is missing (never a fallback to another runtime):

==================  ==============================  =====================================
backend             what runs                       extra
==================  ==============================  =====================================
onnxruntime         ONNX Runtime CPU, FP32          ``pip install -e ".[onnx]"``
onnxruntime-int8    ONNX Runtime CPU, static INT8   ``pip install -e ".[onnx]"``
                    (QDQ, per-channel weights)
openvino            OpenVINO CPU plugin, FP32       ``pip install -e ".[openvino]"``
openvino-int8       OpenVINO CPU, INT8 from NNCF    ``pip install -e ".[openvino-int8]"``
executorch          ExecuTorch, XNNPACK delegate,   ``pip install -e ".[executorch]"``
                    FP32, its Python runtime
executorch-int8     the same, INT8 from the         ``pip install -e ".[executorch]"``
                    XNNPACK quantiser (pt2e)
==================  ==============================  =====================================

:func:`prepare_call` returns the zero-argument call that a :class:`~proxylessnas.hardware.measure.Runner`
times. Every runtime runs on the calling thread with one thread (checked on this machine: the
thread's CPU time equals the process's), so the thread clock of the table builder applies to all.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from proxylessnas.errors import ProxylessError

OPENVINO_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32"}
"""OpenVINO's compile settings besides the thread count. The precision hint is explicit: on a CPU
with BF16 support the plugin would otherwise run FP32 models in BF16."""


@dataclass(frozen=True)
class Runtime:
    """One backend: the modules it imports, the distributions whose versions identify it, its pip
    extra, the precision of the timed model and the settings recorded in a table's provenance."""

    name: str
    modules: tuple[str, ...]
    distributions: tuple[str, ...]
    extra: str | None
    dtype: str = "float32"
    settings: dict[str, Any] = field(default_factory=dict)

    def require(self) -> None:
        """Import every module the runtime needs; a missing one is a one-line error naming the extra."""
        for module in self.modules:
            try:
                with quiet_stderr(), warnings.catch_warnings():  # ExecuTorch's imports log CPU probes
                    warnings.simplefilter("ignore")
                    importlib.import_module(module)
            except ImportError as err:
                missing = isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] == module
                what = f"{module} is not installed" if missing else f"{module} cannot be imported ({err})"
                raise ProxylessError(what, f"backend {self.name}",
                                     f"install it: pip install -e \".[{self.extra}]\"") from None

    def version(self) -> str:
        """The version of the runtime's distribution(s), e.g. ``2026.4.1+nncf-3.4.0``."""
        versions = []
        for dist in self.distributions:
            try:
                versions.append(importlib.metadata.version(dist))
            except importlib.metadata.PackageNotFoundError:
                versions.append("not installed")
        return versions[0] + "".join(f"+{d}-{v}" for d, v in zip(self.distributions[1:], versions[1:]))


INT8 = {"quantization": "static int8", "weights": "int8 symmetric, per output channel",
        "calibration": "synthetic: 16 standard-normal inputs of the timed shape"}
RUNTIMES = {runtime.name: runtime for runtime in (
    Runtime("torch", ("torch",), ("torch",), None),
    Runtime("torchscript", ("torch",), ("torch",), None, settings={"graph": "trace + freeze"}),
    Runtime("onnxruntime", ("onnx", "onnxruntime"), ("onnxruntime",), "onnx",
            settings={"graph_optimization": "all", "execution": "sequential"}),
    Runtime("onnxruntime-int8", ("onnx", "onnxruntime", "onnxruntime.quantization"), ("onnxruntime",), "onnx",
            "int8", {"graph_optimization": "all", "execution": "sequential", **INT8, "format": "QDQ",
                     "activations": "uint8 asymmetric, min-max calibration"}),
    Runtime("openvino", ("openvino",), ("openvino",), "openvino", settings=dict(OPENVINO_CONFIG)),
    Runtime("openvino-int8", ("openvino", "nncf"), ("openvino", "nncf"), "openvino-int8", "int8",
            {**OPENVINO_CONFIG, **INT8, "format": "NNCF FakeQuantize (preset performance)",
             "activations": "int8/uint8, min-max calibration"}),
    Runtime("executorch", ("executorch", "executorch.runtime"), ("executorch",), "executorch",
            settings={"delegate": "XNNPACK", "runtime": "executorch.runtime (Python)"}),
    Runtime("executorch-int8", ("executorch", "executorch.runtime", "torchao"), ("executorch", "torchao"),
            "executorch", "int8", {"delegate": "XNNPACK", "runtime": "executorch.runtime (Python)", **INT8,
                                   "format": "PyTorch 2 export quantisation, XNNPACKQuantizer",
                                   "activations": "int8 asymmetric per tensor, min-max calibration"}),
)}


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise ProxylessError(f"unknown backend '{name}'", "backend", f"use one of {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def export_onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    """ONNX of an eval-mode module with BN folded into the convs.

    The TorchScript-based exporter (``dynamo=False``) is used on purpose: for these small static
    graphs it is ~10x faster than the dynamo exporter and needs no onnxscript.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["input"],
                          output_names=["output"], do_constant_folding=True, opset_version=17)
    return buffer.getvalue()


def calibration_inputs(example: torch.Tensor, count: int = 16, seed: int = 0) -> list[torch.Tensor]:
    """Synthetic calibration data: ``count`` standard-normal tensors of the example's shape.

    Calibration sets the quantisation scales, which change the outputs, not the kernels that run:
    the timing of a quantised block does not depend on which data calibrated it."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*example.shape, generator=generator) for _ in range(count)]


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence what native code writes straight to file descriptor 2 (ExecuTorch's log lines)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _onnxruntime_call(model: bytes, example: torch.Tensor, threads: int) -> Callable[[], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed = {"input": example.numpy()}
    return lambda: session.run(None, feed)


def openvino_telemetry_on() -> bool:
    """Whether OpenVINO's usage telemetry is on here (its package installed and not opted out):
    then every conversion and NNCF quantisation starts a helper process that sends an event,
    for up to 3 s, beside the timings."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return False
    result = OptInChecker().check(enable_opt_in_dialog=False, disable_in_ci=True)
    return result in (ConsentCheckResult.ACCEPTED, ConsentCheckResult.NO_FILE)


@functools.cache
def warn_if_openvino_telemetry() -> None:
    """One warning per process where :func:`openvino_telemetry_on`."""
    if openvino_telemetry_on():
        warnings.warn("OpenVINO's usage telemetry is on: each conversion starts a helper process that "
                      "runs beside the timings and can slow them; turn it off with OpenVINO's own "
                      "switch, 'opt_in_out --opt_out'", stacklevel=3)


def _openvino_call(module: nn.Module, example: torch.Tensor, threads: int, int8: bool) -> Callable[[], Any]:
    import openvino as ov

    warn_if_openvino_telemetry()
    # from the same ONNX graph as ONNX Runtime (BN folded): 4x faster to convert than from torch
    model = ov.convert_model(io.BytesIO(export_onnx_bytes(module, example)))
    if int8:
        from proxylessnas.hardware.quantize import nncf_int8

        model = nncf_int8(model, calibration_inputs(example))
    compiled = ov.Core().compile_model(model, "CPU", {**OPENVINO_CONFIG, "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    request.set_input_tensor(ov.Tensor(example.numpy()))
    return request.infer


class _ExecutorchCall:
    """An ExecuTorch method with the program it was loaded from: the program must outlive the
    method (a method whose program was freed reads freed memory: a segmentation fault)."""

    def __init__(self, program: Any, example: torch.Tensor) -> None:
        self.program = program
        self.method = program.load_method("forward")
        self.inputs = [example]

    def __call__(self) -> Any:
        return self.method.execute(self.inputs)


def _executorch_program(module: nn.Module, example: torch.Tensor, int8: bool) -> bytes:
    from torch.export import export

    # its import logs CPU probes to fd 2 and warns of experimental APIs
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        if int8:
            from proxylessnas.hardware.quantize import executorch_int8

            module = executorch_int8(module, example, calibration_inputs(example))
        with torch.no_grad():
            program = to_edge_transform_and_lower(export(module, (example,)),
                                                  partitioner=[XnnpackPartitioner()]).to_executorch()
    return bytes(program.buffer)


def _executorch_call(program: bytes, example: torch.Tensor, threads: int) -> Callable[[], Any]:
    # its thread-pool calls log CPU probes to fd 2
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime as ExecutorchRuntime

        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)  # one pool per process, as on a phone
        return _ExecutorchCall(ExecutorchRuntime.get().load_program(program), example)


SERIALISED = ("onnxruntime", "onnxruntime-int8", "executorch", "executorch-int8")
"""Runtimes whose converted program is bytes (ONNX, quantised ONNX, an ExecuTorch ``.pte``): the
conversion (:func:`compile_program`) can run in another process."""


def compile_program(name: str, module: nn.Module, example: torch.Tensor) -> bytes:
    """The program runtime ``name`` (one of :data:`SERIALISED`) runs for eval-mode ``module``: the
    slow part of preparing a call (an ExecuTorch lowering takes ~10 s, INT8 ~20 s)."""
    get_runtime(name).require()
    if name == "onnxruntime":
        return export_onnx_bytes(module, example)
    if name == "onnxruntime-int8":
        from proxylessnas.hardware.quantize import onnxruntime_int8

        return onnxruntime_int8(export_onnx_bytes(module, example), calibration_inputs(example))
    if name in ("executorch", "executorch-int8"):
        return _executorch_program(module, example, int8=name == "executorch-int8")
    raise ProxylessError(f"backend '{name}' has no serialised program", "backend",
                         f"use one of {', '.join(SERIALISED)}")


def load_program(name: str, program: bytes, example: torch.Tensor, threads: int) -> Callable[[], Any]:
    """The call that runs a :func:`compile_program` program of runtime ``name`` on ``example``."""
    if name in ("onnxruntime", "onnxruntime-int8"):
        return _onnxruntime_call(program, example, threads)
    if name in ("executorch", "executorch-int8"):
        return _executorch_call(program, example, threads)
    raise ProxylessError(f"backend '{name}' has no serialised program", "backend",
                         f"use one of {', '.join(SERIALISED)}")


def prepare_call(name: str, module: nn.Module, example: torch.Tensor, threads: int) -> Callable[[], Any]:
    """The call that runs ``module`` on ``example`` with runtime ``name`` (not torch / torchscript:
    :func:`~proxylessnas.hardware.measure.prepare_runner` handles those)."""
    runtime = get_runtime(name)
    runtime.require()
    module = module.eval()
    if name in SERIALISED:
        return load_program(name, compile_program(name, module, example), example, threads)
    if name in ("openvino", "openvino-int8"):
        return _openvino_call(module, example, threads, int8=name == "openvino-int8")
    raise ProxylessError(f"backend '{name}' has no runtime call", "backend", "use torch or torchscript")
