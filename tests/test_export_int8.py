"""INT8 ONNX export: calibrated on training images, checked against FP32 on test images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from proxylessnas import get_space
from proxylessnas.cli import main
from proxylessnas.space.arch import Arch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

SPEC = "synthetic:64?resolution=16"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    space = get_space("tiny")
    ops = [layer.candidates[0].token for layer in space.searched_layers]
    Arch.from_ops(space, ops).save(folder / "a.json")
    assert main(["train", str(folder / "a.json"), "warmup_epochs=0.5", "--dataset", SPEC, "--epochs", "2",
                 "--batch-size", "16", "--out", str(folder / "run"), "--no-progress"]) == 0
    return folder


def test_int8_export_is_quantised_and_its_card_reports_the_check(trained, capsys):
    out = trained / "exp" / "net.int8.onnx"
    assert main(["export", str(trained / "run" / "best.pt"), "--format", "onnx-int8", "--out", str(out),
                 "--calibration-images", "32", "--check-images", "16", "--min-agreement", "0"]) == 0
    assert "INT8 agrees with FP32 on" in capsys.readouterr().out
    assert b"QuantizeLinear" in out.read_bytes() and b"DequantizeLinear" in out.read_bytes()
    entry = json.loads((trained / "exp" / "net.card.json").read_text())["exports"]["onnx-int8"]
    assert entry["file"] == "net.int8.onnx" and entry["passed"]
    assert entry["calibration_images"] == 32 and entry["check_images"] == 16
    # the agreement, recomputed here from the written file against the eager FP32 net
    import onnxruntime as ort

    from proxylessnas.data import load_dataset
    from proxylessnas.export.int8 import image_batches
    from proxylessnas.train.commands import load_trained_model

    model = load_trained_model(trained / "run" / "best.pt").eval()
    dataset = load_dataset(SPEC)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    same = total = 0
    for images, _ in image_batches(dataset, dataset.test, 16, None):
        int8 = session.run(["logits"], {"input": images.numpy()})[0]
        with torch.no_grad():
            fp32 = model(images).numpy()
        same += int((int8.argmax(1) == fp32.argmax(1)).sum())
        total += len(images)
        spread = float(np.ptp(fp32))
        assert np.abs(int8 - fp32).max() <= 0.25 * spread + 1e-3  # quantised, not a different net
    assert entry["agreement"] == pytest.approx(same / total)


def test_an_int8_net_that_disagrees_with_fp32_is_not_written(trained, monkeypatch, capsys):
    from proxylessnas.hardware import quantize

    def negated(model_bytes, inputs):  # an "INT8" model whose class is FP32's least likely one
        import io

        import onnx
        from onnx import helper

        graph = onnx.load(io.BytesIO(model_bytes))
        graph.graph.output[0].name = "fp32_logits"
        for node in graph.graph.node:
            node.output[:] = ["fp32_logits" if name == "logits" else name for name in node.output]
        graph.graph.node.append(helper.make_node("Neg", ["fp32_logits"], ["logits"]))
        graph.graph.output[0].name = "logits"
        return graph.SerializeToString()

    pytest.importorskip("onnx")
    monkeypatch.setattr(quantize, "onnxruntime_int8", negated)
    out = trained / "bad" / "net.int8.onnx"
    code = main(["export", str(trained / "run" / "best.pt"), "--format", "onnx-int8", "--out", str(out),
                 "--calibration-images", "16", "--check-images", "16", "--min-agreement", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: the INT8 net agrees with FP32 on")
    assert not out.exists()


def test_int8_needs_a_dataset_and_its_options_need_int8(trained, capsys):
    arch = trained / "a.json"
    assert main(["export", str(arch), "--format", "onnx-int8", "--out", str(trained / "x.int8.onnx")]) == 2
    assert "needs images to calibrate on" in capsys.readouterr().err
    assert main(["export", str(arch), "--format", "onnx", "--calibration-images", "8",
                 "--out", str(trained / "x.onnx")]) == 2
    assert "--calibration-images applies to --format onnx-int8 only" in capsys.readouterr().err
    assert not (trained / "x.onnx").exists() and not (trained / "x.int8.onnx").exists()


def test_the_activation_ranges_cover_every_calibration_batch(trained):
    """Min-max calibration over 24 batches: the input's uint8 scale is (max(x, 0) - min(x, 0)) / 255
    over all of them (a calibrator that folded its batches in chunks kept the last chunk's range)."""
    import io

    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from proxylessnas.hardware.quantize import onnxruntime_int8
    from proxylessnas.hardware.runtimes import export_onnx_bytes
    from proxylessnas.train.commands import load_trained_model

    model = load_trained_model(trained / "run" / "best.pt").eval()
    batches = [torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(i)) * (1 + (i == 3))
               for i in range(24)]  # the widest batch early on
    quantised = onnx.load(io.BytesIO(onnxruntime_int8(export_onnx_bytes(model, batches[0]), batches)))
    scale = {i.name: numpy_helper.to_array(i) for i in quantised.graph.initializer}["input_scale"]
    every = torch.cat(batches)
    expected = (max(float(every.max()), 0.0) - min(float(every.min()), 0.0)) / 255
    assert float(scale) == pytest.approx(expected, rel=1e-5)
