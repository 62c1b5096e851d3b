"""The optional runtimes (issue 19): ONNX Runtime INT8, OpenVINO FP32 / INT8 and ExecuTorch build
tables, time whole nets and serve as ``--hardware`` targets; a missing package is one line naming
its extra. Each backend's tests skip, with the reason, where its package is not installed."""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import sys

import numpy as np
import pytest
import torch

from proxylessnas import Arch, get_space
from proxylessnas.cli import main
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.build import build_lut
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.measure import Backend, build_block, key_input_shape, prepare_runner
from proxylessnas.hardware.runtimes import RUNTIMES, calibration_inputs, export_onnx_bytes, prepare_call

FAST = {"seconds_per_key": 0.002, "min_samples": 4, "rounds": 2, "progress": False}
OPTIONAL = ("onnxruntime-int8", "openvino", "openvino-int8", "executorch", "executorch-int8")
PACKAGES = {"onnxruntime-int8": "onnxruntime", "openvino": "openvino", "openvino-int8": "nncf",
            "executorch": "executorch", "executorch-int8": "torchao"}


def needs(backend: str):
    """Skip (with the reason) where the backend's packages are not installed."""
    tops = dict.fromkeys(m.split(".")[0] for m in RUNTIMES[backend].modules)
    missing = [m for m in tops if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed "
                                                     f"(pip install -e \".[{RUNTIMES[backend].extra}]\")")


def block(index: int = 3):
    key = space_keys(get_space("tiny")).unique()[index]
    return key, build_block(key)


def as_array(result) -> np.ndarray:
    """The first output of whatever a runtime's call returns (list, dict-like or tensor)."""
    first = result[0] if isinstance(result, (list, tuple)) else next(iter(result.values()))
    return first.numpy() if isinstance(first, torch.Tensor) else np.asarray(first)


@pytest.mark.parametrize("backend", OPTIONAL)
def test_a_missing_runtime_is_one_line_naming_its_extra(backend, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, PACKAGES[backend], None)  # import fails as if not installed
    with pytest.raises(ProxylessError, match=rf"pip install -e \"\.\[{RUNTIMES[backend].extra}\]\""):
        Backend(backend).check_available()
    out = tmp_path / "t.json"
    code = main(["latency", "build", "--space", "tiny", "--backend", backend, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not installed" in err[0], err
    assert not out.exists()
    space = get_space("tiny")
    arch = tmp_path / "arch.json"
    Arch.from_ops(space, [layer.candidates[0] for layer in space.searched_layers]).save(arch)
    monkeypatch.setenv("PROXYLESS_CACHE", str(tmp_path / "cache"))
    assert main(["latency", "predict", str(arch), "--hardware", backend]) == 2  # builds nothing
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not installed" in err[0] and RUNTIMES[backend].extra in err[0], err
    assert not (tmp_path / "cache").exists()


def test_every_runtime_is_a_cpu_backend_with_a_version_and_a_precision():
    for name in OPTIONAL:
        with pytest.raises(ProxylessError, match="measures on the CPU"):
            Backend(name, "cuda")
        provenance = Backend(name, threads=2, batch_size=8).provenance()
        assert provenance["dtype"] == ("int8" if name.endswith("int8") else "float32")
        assert provenance["threads"] == 2 and provenance["batch_size"] == 8 and provenance["backend_version"]
        assert provenance["clock"] == "wall"


@pytest.mark.parametrize("backend", ["openvino", "executorch"])
def test_fp32_runtimes_compute_what_torch_computes(backend):
    pytest.importorskip(PACKAGES[backend])
    key, module = block()
    x = torch.randn(*key_input_shape(key, 2))
    out = as_array(prepare_call(backend, module, x, threads=1)())
    with torch.no_grad():
        np.testing.assert_allclose(out, module(x).numpy(), rtol=1e-3, atol=1e-4)


@needs("onnxruntime-int8")
def test_onnxruntime_int8_is_static_qdq_with_per_channel_weights():
    import onnx

    from proxylessnas.hardware.quantize import onnxruntime_int8

    key, module = block()
    x = torch.randn(*key_input_shape(key, 1))
    graph = onnx.load_from_string(onnxruntime_int8(export_onnx_bytes(module, x), calibration_inputs(x))).graph
    ops = [n.op_type for n in graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    weights = {i.name: i for i in graph.initializer}
    per_channel = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
                   and weights[n.input[0]].data_type == onnx.TensorProto.INT8
                   and len(weights[n.input[1]].dims) == 1 and weights[n.input[1]].dims[0] > 1]
    assert per_channel, "no per-channel int8 weight"


@needs("openvino-int8")
def test_openvino_int8_runs_quantised_convolutions():
    import openvino as ov

    from proxylessnas.hardware.quantize import nncf_int8

    key, module = block()
    x = torch.randn(*key_input_shape(key, 1))
    model = nncf_int8(ov.convert_model(io.BytesIO(export_onnx_bytes(module, x))),
                      calibration_inputs(x, 4))
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    infos = [op.get_rt_info() for op in compiled.get_runtime_model().get_ops()]
    precisions = {i["runtimePrecision"].astype(str) for i in infos
                  if i["layerType"].astype(str) == "Convolution"}
    assert precisions & {"u8", "i8"}, precisions


@needs("executorch-int8")
def test_executorch_int8_quantises_weights_per_channel():
    from proxylessnas.hardware.quantize import executorch_int8

    key, module = block()
    x = torch.randn(*key_input_shape(key, 1))
    code = executorch_int8(module, x, calibration_inputs(x, 4)).code
    assert "dequantize_per_channel" in code and "quantize_per_tensor" in code


@pytest.mark.parametrize("backend", [pytest.param(b, marks=needs(b)) for b in OPTIONAL])
def test_each_runtime_builds_a_table_at_one_and_two_threads(backend, tmp_path):
    space = get_space("tiny")
    keys = space_keys(space).unique()[3:4]  # one block: ExecuTorch's lowering takes seconds a block
    table = build_lut(space, Backend(backend), tmp_path / "t1.json", keys=keys, **FAST)
    assert sorted(table.entries) == sorted(str(k) for k in keys)
    assert all(s.median > 0 for s in table.entries.values())
    assert table.provenance["backend"] == backend and table.provenance["clock"] == "thread"
    assert table.provenance["backend_version"] == RUNTIMES[backend].version() != "not installed"
    key = keys[0]
    setting = Backend(backend, threads=2, batch_size=8)
    runner = prepare_runner(build_block(key), key_input_shape(key, setting.batch_size), setting)
    assert runner.time_once() > 0


@needs("onnxruntime-int8")
def test_measure_and_validate_on_the_onnxruntime_int8_backend(tmp_path, capsys):
    space = get_space("tiny")
    arch = tmp_path / "arch.json"
    Arch.from_ops(space, [layer.candidates[-1] for layer in space.searched_layers]).save(arch)
    report = tmp_path / "m.json"
    code = main(["latency", "measure", str(arch), "--backend", "onnxruntime-int8", "--rounds", "2",
                 "--repeats", "2", "--json", str(report)])
    assert code == 0 and "onnxruntime-int8-cpu-t1" in capsys.readouterr().out
    assert json.loads(report.read_text())["provenance"]["dtype"] == "int8"
    table = tmp_path / "int8.json"
    build_lut(space, Backend("onnxruntime-int8"), table, **FAST)
    code = main(["latency", "validate", "--hardware", str(table), "--samples", "2", "--gauge", "0",
                 "--workers", "2", "--no-progress"])  # converted in two worker processes
    assert code == 0 and "MAPE" in capsys.readouterr().out


@needs("onnxruntime-int8")
def test_search_with_hardware_onnxruntime_int8_runs_end_to_end(tmp_path, monkeypatch, capsys):
    import proxylessnas.hardware.build as build

    monkeypatch.setenv("PROXYLESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "build_lut", functools.partial(build.build_lut, **{**FAST, "progress": False}))
    out = tmp_path / "run"
    code = main(["search", "--dataset", "synthetic:120", "--space", "tiny", "--hardware", "onnxruntime-int8",
                 "--epochs", "1", "--warmup-epochs", "1", "--no-progress", "--out", str(out),
                 "search.steps_per_epoch=2", "data.batch_size=16", "data.valid_batch_size=16",
                 "data.valid_size=32", "data.eval_batch_size=64", "run.threads=1", "run.eval_batches=1",
                 "run.bn_recalibration_batches=1", "latency.calibrate=0", "hardware.measure_runs=5",
                 "hardware.seconds_per_net=0.02"])
    assert code == 0, capsys.readouterr().err
    metadata = json.loads((out / "arch.json").read_text())["metadata"]
    assert metadata["hardware"] == "onnxruntime-int8" and metadata["measured_latency"] > 0
    assert list((tmp_path / "cache" / "latency").glob("*onnxruntime-int8-cpu-t1*"))


@pytest.mark.parametrize(("consent", "on"), [("ACCEPTED", True), ("NO_FILE", True), ("DECLINED", False),
                                             (None, False)])
def test_openvino_telemetry_is_reported_where_it_is_on(consent, on, monkeypatch):
    """OpenVINO's telemetry (on unless opted out) starts a helper process beside the timings after
    each conversion: one warning says so and names the switch; absent or opted out, no warning."""
    import enum
    import types
    import warnings

    from proxylessnas.hardware import runtimes

    name = "openvino_telemetry.utils.opt_in_checker"
    if consent is None:
        monkeypatch.setitem(sys.modules, name, None)  # the package is not installed
    else:
        result = enum.Enum("ConsentCheckResult", "DECLINED ACCEPTED NO_FILE")
        checker = types.SimpleNamespace(check=lambda enable_opt_in_dialog, disable_in_ci: result[consent])
        module = types.ModuleType(name)
        module.ConsentCheckResult, module.OptInChecker = result, lambda: checker
        for parent in ("openvino_telemetry", "openvino_telemetry.utils"):
            monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
        monkeypatch.setitem(sys.modules, name, module)
    assert runtimes.openvino_telemetry_on() is on
    runtimes.warn_if_openvino_telemetry.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtimes.warn_if_openvino_telemetry()
        runtimes.warn_if_openvino_telemetry()  # once per process
    runtimes.warn_if_openvino_telemetry.cache_clear()
    assert [str(w.message).count("opt_in_out --opt_out") for w in caught] == ([1] if on else [])
