"""No NaN leaves the building: training stops on a NaN loss or NaN weights and keeps its last good
checkpoint; export refuses NaN weights; the parity check fails on NaN or infinite outputs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from proxylessnas import Arch, ProxylessError, get_space
from proxylessnas.cli import main
from proxylessnas.data import synthetic_dataset
from proxylessnas.export import check_parity, export_model, random_inputs, save_exported_weights
from proxylessnas.nets.config import net_config
from proxylessnas.nets.net import ProxylessNet
from proxylessnas.runtime.checkpoint import load_checkpoint, save_checkpoint
from proxylessnas.runtime.finite import NonFiniteLoss, check_finite, count_nonfinite
from proxylessnas.runtime.seeding import seed_everything
from proxylessnas.train.recipe import TrainRecipe
from proxylessnas.train.run import CHECKPOINT_KIND, train_model

SPEC = "synthetic:96?resolution=16&seed=1"


def tiny_arch() -> Arch:
    space = get_space("tiny")
    return Arch.from_ops(space, [layer.candidates[1].token for layer in space.searched_layers])


def tiny_net(num_classes: int = 10) -> ProxylessNet:
    return ProxylessNet(net_config(get_space("tiny", num_classes=num_classes), tiny_arch()))


def tiny_recipe(**changes) -> TrainRecipe:
    base = dict(epochs=2, batch_size=16, lr=0.05, warmup_epochs=0.5, eval_batch_size=32, ema_decay=0.0)
    return TrainRecipe(**{**base, **changes})


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_check_finite_and_count_nonfinite():
    assert check_finite("loss", torch.tensor(1.5)) == 1.5
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(NonFiniteLoss):
            check_finite("loss", torch.tensor(value))
    state = {"w": torch.tensor([1.0, math.nan, math.inf]), "n": torch.tensor(3), "b": torch.zeros(2)}
    assert count_nonfinite(state) == (2, 5)  # integer tensors are not counted


# training --------------------------------------------------------------------------------------
def test_cli_train_with_a_huge_lr_stops_with_one_line_and_saves_no_nan(tmp_path, capsys):
    tiny_arch().save(tmp_path / "arch.json")
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "arch.json"), "eval_batch_size=32", "--dataset", SPEC, "--epochs",
                 "2", "--batch-size", "16", "--lr", "1e30", "--out", str(out), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "training loss became nan at epoch 1 step" in line and "lower the learning rate" in line
    for checkpoint in out.glob("*.pt"):  # nothing non-finite was saved (here: nothing was saved)
        state = load_checkpoint(checkpoint)
        assert count_nonfinite(state["weights"])[0] == 0
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_a_nan_loss_keeps_the_last_good_checkpoint(tmp_path):
    dataset = synthetic_dataset(96, resolution=16, seed=1)  # 6 steps per epoch
    seed_everything(0)
    train_model(tiny_net(), dataset, tiny_recipe(), tmp_path, progress=False, max_steps=6, log=lambda _: None)
    before = (tmp_path / "last.pt").read_bytes()
    poisoned = dataclasses.replace(dataset, std=(0.0,) * dataset.channels)  # images become inf
    with pytest.raises(ProxylessError) as caught:
        train_model(tiny_net(), poisoned, tiny_recipe(), tmp_path, resume=True, progress=False,
                    log=lambda _: None)
    line = caught.value.line()
    assert "training loss became nan at epoch 2 step 1 of 6" in line
    assert "last good checkpoint (last.pt and best.pt) is kept" in line and line.count("\n") == 0
    assert (tmp_path / "last.pt").read_bytes() == before
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_weights_that_turn_nan_under_a_finite_loss_are_never_saved(tmp_path):
    dataset = synthetic_dataset(96, resolution=16, seed=1)
    seed_everything(0)
    net = tiny_net()
    batch_norm = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():  # training uses batch statistics: the loss stays finite, the running mean NaN
        batch_norm.running_mean[0] = math.nan
    with pytest.raises(ProxylessError, match=r"weights became NaN or inf\w* \(1 of \d+ values\) by epoch 1"):
        train_model(net, dataset, tiny_recipe(), tmp_path, progress=False, max_steps=3, log=lambda _: None)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


# export ----------------------------------------------------------------------------------------
def nan_checkpoint(path, values: int = 5):
    net = tiny_net()
    weights = net.state_dict()
    key = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() >= values)
    weights[key].view(-1)[:values] = math.nan
    save_checkpoint(path, {"kind": CHECKPOINT_KIND, "net_config": net.config(), "weights": weights})


def test_export_of_a_nan_checkpoint_is_refused_with_the_count(tmp_path, capsys):
    nan_checkpoint(tmp_path / "nan.pt", values=5)
    out = tmp_path / "exported" / "net.onnx"
    assert main(["export", str(tmp_path / "nan.pt"), "--format", "onnx", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "the weights hold 5 NaN or infinite value(s)" in line
    assert not (tmp_path / "exported").exists()  # nothing written, not even the folder
    with pytest.raises(ProxylessError, match="hold 1 NaN"):
        net = tiny_net()
        with torch.no_grad():
            next(net.parameters()).view(-1)[0] = math.inf
        save_exported_weights(net, tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_parity_check_fails_on_nonfinite_outputs():
    net = tiny_net().eval()
    inputs = random_inputs(3, 16)
    fine = check_parity(net, lambda x: net(x), inputs)
    assert fine.passed and fine.nonfinite_eager == fine.nonfinite_exported == 0
    nan_exported = check_parity(net, lambda x: np.full((len(x), 10), np.nan, np.float32), inputs)
    assert not nan_exported.passed and nan_exported.nonfinite_exported == sum(len(x) for x in inputs) * 10
    assert nan_exported.to_dict()["passed"] is False

    class NaNNet(torch.nn.Module):
        def forward(self, x):
            return torch.full((len(x), 10), math.nan)

    both_nan = check_parity(NaNNet(), lambda x: np.full((len(x), 10), np.nan, np.float32), inputs)
    assert not both_nan.passed  # the old check: max diff 0, passed
    assert both_nan.nonfinite_eager > 0 and both_nan.nonfinite_exported > 0


def test_onnx_export_of_a_model_whose_outputs_overflow_is_refused(tmp_path):
    net = tiny_net().eval()
    with torch.no_grad():  # finite weights, infinite logits
        [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1].weight.fill_(3e38)
    assert count_nonfinite(net.state_dict())[0] == 0
    with pytest.raises(ProxylessError, match="own outputs hold .* NaN or infinite"):
        export_model(net, tmp_path / "net.onnx", "onnx", in_chs=3, resolution=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no temporary file, no lock
