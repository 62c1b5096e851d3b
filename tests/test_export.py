"""Export: ONNX (dynamic batch) and TorchScript parity, refusal above tolerance, weights, card, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from proxylessnas import Arch, ProxylessError, get_space
from proxylessnas.cli import main
from proxylessnas.export import (
    check_parity,
    export_model,
    load_exported_weights,
    model_card,
    random_inputs,
    save_exported_weights,
)
from proxylessnas.nets.config import net_config
from proxylessnas.nets.net import ProxylessNet


def tiny_net(seed: int = 0) -> ProxylessNet:
    torch.manual_seed(seed)
    space = get_space("tiny")
    arch = Arch.from_ops(space, [layer.candidates[-2].token for layer in space.searched_layers])
    net = ProxylessNet(net_config(space, arch, dropout=0.3, name="tiny_test"))
    with torch.no_grad():  # non-trivial BN statistics, so BN folding is exercised
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_onnx_export_has_dynamic_batch_and_matches_eager(tmp_path):
    import onnx
    import onnxruntime as ort

    net = tiny_net()
    result = export_model(net, tmp_path / "m.onnx", "onnx", in_chs=3, resolution=16)
    assert result.parity.passed and result.parity.max_abs_diff < 1e-4
    assert result.parity.batch_sizes == (1, 3)
    graph_input = onnx.load(str(tmp_path / "m.onnx")).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 16, 16)
    out = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(out, net(x).detach().numpy(), atol=1e-4)


def test_torchscript_export_matches_eager(tmp_path):
    net = tiny_net(1)
    result = export_model(net, tmp_path / "m.pt", "torchscript", in_chs=3, resolution=16)
    assert result.parity.max_abs_diff <= 1e-6
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=1e-5)


def test_parity_failure_refuses_to_write(tmp_path, monkeypatch):
    import proxylessnas.export.formats as formats

    net = tiny_net()
    original = formats.check_parity

    def perturbed(model, run, inputs, tolerance):
        return original(model, lambda x: np.asarray(run(x)) + 1e-3, inputs, tolerance)

    monkeypatch.setattr(formats, "check_parity", perturbed)
    with pytest.raises(ProxylessError, match="differs from eager by 0.001"):
        export_model(net, tmp_path / "m.onnx", "onnx", in_chs=3, resolution=16)
    assert list(tmp_path.iterdir()) == []


def test_check_parity_reports_the_max_difference():
    net = tiny_net()
    inputs = random_inputs(3, 16, batch_sizes=(2,), trials=3)
    report = check_parity(net, lambda x: net(x) + 0.25 * (x[:, :1, 0, 0] > 0), inputs, tolerance=0.3)
    assert report.max_abs_diff == pytest.approx(0.25) and report.passed and report.trials == 3
    bad_shape = check_parity(net, lambda x: net(x)[:1], inputs)
    assert not bad_shape.passed


def test_safetensors_round_trip_and_card(tmp_path):
    net = tiny_net(2)
    save_exported_weights(net, tmp_path / "w.safetensors")
    loaded = load_exported_weights(tmp_path / "w.safetensors")
    assert loaded.config() == net.config()
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(loaded(x), net(x))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ProxylessError, match="safetensors"):
        load_exported_weights(tmp_path / "cut.safetensors")
    card = model_card(net, source="test", dataset="synthetic", accuracy={"test_top1": 50.0})
    assert card["params"] == sum(p.numel() for p in net.parameters())
    assert card["macs"] > 0 and card["num_classes"] == 4 and card["versions"]["torch"] == torch.__version__
    assert card["latency"].startswith("not measured")
    json.dumps(card)


def test_cli_export_from_training_checkpoint(tmp_path, capsys):
    space = get_space("tiny")
    ops = [layer.candidates[0].token for layer in space.searched_layers]
    Arch.from_ops(space, ops).save(tmp_path / "a.json")
    spec = "synthetic:64?resolution=16"
    assert main(["train", str(tmp_path / "a.json"), "warmup_epochs=0.5", "--dataset", spec, "--epochs", "1",
                 "--batch-size", "16", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    out = tmp_path / "exp" / "net.onnx"
    assert main(["export", str(tmp_path / "run" / "best.pt"), "--format", "onnx", "--out", str(out)]) == 0
    assert main(["export", str(tmp_path / "run" / "best.pt"), "--format", "torchscript",
                 "--out", str(tmp_path / "exp" / "net.torchscript.pt")]) == 0
    assert "max abs diff vs eager" in capsys.readouterr().out
    card = json.loads((tmp_path / "exp" / "net.card.json").read_text())
    assert set(card["exports"]) == {"onnx", "torchscript"}
    assert all(e["max_abs_diff"] <= 1e-4 for e in card["exports"].values())
    assert card["dataset"] == spec and card["accuracy"]["epochs_trained"] == 1
    assert len(card["input"]["normalisation"]["mean"]) == 3
    reloaded = load_exported_weights(tmp_path / "exp" / "net.safetensors")
    assert reloaded.net_config.num_classes == 10


def test_cli_export_zoo_and_errors(tmp_path, capsys):
    out = tmp_path / "mbv2.onnx"
    assert main(["export", "mobilenet_v2", "--format", "onnx", "--num-classes", "10", "--resolution", "32",
                 "--out", str(out)]) == 0
    card = json.loads((tmp_path / "mbv2.card.json").read_text())
    assert card["name"] == "mobilenet_v2_cifar" and card["net_config"]["stem_stride"] == 1
    capsys.readouterr()
    assert main(["export", "nope", "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["export", str(tmp_path / "bad.pt"), "--format", "onnx"]) == 2
    assert "this is a text file, not a" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 cut short")
    assert main(["export", str(tmp_path / "bad.pt"), "--format", "onnx"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
