"""Training: recipe, schedule, parameter groups, EMA, BN recalibration, eval, exact resume, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from proxylessnas import Arch, ProxylessError, get_space
from proxylessnas.cli import main
from proxylessnas.data import synthetic_dataset
from proxylessnas.nets.config import net_config
from proxylessnas.nets.net import ProxylessNet
from proxylessnas.runtime.checkpoint import load_checkpoint, save_checkpoint
from proxylessnas.runtime.seeding import seed_everything
from proxylessnas.train.bn_recalibration import recalibrate_bn
from proxylessnas.train.ema import ModelEma
from proxylessnas.train.loops import evaluate, parameter_groups
from proxylessnas.train.recipe import TrainRecipe, cifar_recipe, default_recipe, learning_rate
from proxylessnas.train.run import train_model
from proxylessnas.train.target import build_target, load_search_init, zoo_net_for

SPEC = "synthetic:96?resolution=16&seed=1"


def tiny_arch() -> Arch:
    space = get_space("tiny")
    return Arch.from_ops(space, [layer.candidates[1].token for layer in space.searched_layers])


def tiny_net(num_classes: int = 10, dropout: float = 0.2) -> ProxylessNet:
    space = get_space("tiny", num_classes=num_classes)
    return ProxylessNet(net_config(space, tiny_arch(), dropout=dropout))


def tiny_recipe(**changes) -> TrainRecipe:
    base = dict(epochs=2, batch_size=16, lr=0.05, warmup_epochs=0.5, eval_batch_size=32, ema_decay=0.9,
                weight_decay=1e-4)
    return TrainRecipe(**{**base, **changes})


# recipe and schedule -------------------------------------------------------------------------------
def test_default_recipes_follow_the_paper():
    assert default_recipe(224).lr == 0.05 and default_recipe(224).batch_size == 256
    assert default_recipe(224).weight_decay == 4e-5 and default_recipe(224).label_smoothing == 0.1
    assert default_recipe(224).epochs == 300 and default_recipe(224).nesterov
    assert default_recipe(32) == cifar_recipe()
    assert default_recipe(28, "demo").epochs == 10  # the README's train step: minutes
    assert default_recipe(28, "demo").lr == cifar_recipe().lr


def test_overrides_are_typed_and_validated():
    recipe = TrainRecipe().with_overrides(["lr=0.1", "epochs=3", "nesterov=false", "dropout=none",
                                           "warmup_epochs=1"])
    assert (recipe.lr, recipe.epochs, recipe.nesterov, recipe.dropout) == (0.1, 3, False, None)
    with pytest.raises(ProxylessError, match="unknown recipe key"):
        TrainRecipe().with_overrides(["learning_rate=0.1"])
    with pytest.raises(ProxylessError, match="bad value"):
        TrainRecipe().with_overrides(["epochs=many"])
    with pytest.raises(ProxylessError, match="invalid recipe value lr"):
        TrainRecipe(lr=-1.0)


def test_learning_rate_warmup_then_cosine():
    recipe = TrainRecipe(epochs=10, lr=0.2, warmup_epochs=2)
    steps = 5
    rates = [learning_rate(recipe, t, steps) for t in range(50)]
    assert rates[0] == pytest.approx(0.2 / 10) and rates[9] == pytest.approx(0.2)
    for t in range(10, 50):  # brute force: the closed form
        assert rates[t] == pytest.approx(0.1 * (1 + math.cos(math.pi * (t - 10) / 40)))
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))


def test_no_weight_decay_on_bn_and_bias():
    net = tiny_net()
    decay, no_decay = parameter_groups(net, 4e-5)
    names = {id(p): n for n, p in net.named_parameters()}
    assert decay["weight_decay"] == 4e-5 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and p.ndim > 1 for p in decay["params"])
    assert any(".bn." in names[id(p)] for p in no_decay["params"])
    assert "classifier.linear.bias" in {names[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))


# EMA, BN recalibration, evaluation against brute force ----------------------------------------------
def test_ema_matches_brute_force():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).double()
    ema = ModelEma(model, decay=0.8)
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}
    for t in range(12):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.add_(1.0)
        ema.update(model)
        d = min(0.8, (1 + t) / (10 + t))
        for n, p in model.named_parameters():
            expected[n] = d * expected[n] + (1 - d) * p.detach()
    for n, p in ema.module.named_parameters():
        torch.testing.assert_close(p, expected[n], rtol=0, atol=1e-12)
    assert torch.equal(ema.module[1].running_mean, model[1].running_mean)
    clone = ModelEma(model, decay=0.5)
    clone.load_state_dict(ema.state_dict())
    assert clone.updates == 12 and clone.decay == 0.8


def test_recalibrate_bn_gives_dataset_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)).double()
    model[1].running_mean.fill_(100.0)
    model.eval()
    batches = [torch.randn(4, 2, 5, 5, dtype=torch.float64) * 3 + 1 for _ in range(6)]
    weights_before = [p.clone() for p in model.parameters()]
    used = recalibrate_bn(model, iter(batches), num_batches=5)
    assert used == 5 and not model.training and model[1].momentum == 0.1
    with torch.no_grad():
        outs = [model[0](b) for b in batches[:5]]
    mean = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.transpose(0, 1).reshape(3, -1).var(1, unbiased=True) for o in outs]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean)
    torch.testing.assert_close(model[1].running_var, var)
    assert all(torch.equal(a, b) for a, b in zip(weights_before, model.parameters()))


def test_evaluate_matches_brute_force():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7)).double()
    images = torch.randn(23, 3, 2, 2, dtype=torch.float64)
    labels = torch.randint(0, 7, (23,))
    batches = [(images[i:i + 5], labels[i:i + 5]) for i in range(0, 23, 5)]
    result = evaluate(model, batches, 7)
    logits = model(images)
    assert result.loss == pytest.approx(float(nn.functional.cross_entropy(logits, labels).detach()))
    top1 = [int(logits[i].argmax() == labels[i]) for i in range(23)]
    top5 = [int(labels[i] in logits[i].topk(5).indices) for i in range(23)]
    assert result.top1 == pytest.approx(100 * sum(top1) / 23)
    assert result.top5 == pytest.approx(100 * sum(top5) / 23)
    for c in range(7):
        rows = [i for i in range(23) if labels[i] == c]
        expected = 100 * sum(top1[i] for i in rows) / max(1, len(rows))
        assert result.per_class[c] == pytest.approx(expected)
        for p in range(7):
            assert result.confusion[c][p] == sum(int(logits[i].argmax()) == p for i in rows)


# targets -----------------------------------------------------------------------------------------
def test_zoo_cifar_variant_keeps_widths_and_stride_one_stem():
    small = zoo_net_for("mobilenet_v2", 10, 32)
    large = zoo_net_for("mobilenet_v2", 10, 224)
    assert small.net_config.stem_stride == 1 and large.net_config.stem_stride == 2
    assert [b.out_chs for b in small.net_config.blocks] == [b.out_chs for b in large.net_config.blocks]
    assert small.net_config.name == "mobilenet_v2_cifar" and small.net_config.dropout == 0.2
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_build_target_from_arch_file_and_bad_name(tmp_path):
    tiny_arch().save(tmp_path / "arch.json")
    net, info = build_target(str(tmp_path / "arch.json"), num_classes=6, resolution=16, in_chs=1)
    assert info["kind"] == "arch" and net.net_config.num_classes == 6 and net.net_config.in_chs == 1
    with pytest.raises(ProxylessError, match="neither a zoo name nor a file"):
        build_target("no_such_net", 10, 32)


def test_init_from_child_state_dict(tmp_path):
    seed_everything(3)
    source = tiny_net(dropout=0.0)
    save_checkpoint(tmp_path / "checkpoint.pt",
                    {"arch": tiny_arch().to_dict(), "child_state_dict": source.state_dict()})
    net, arch = load_search_init(tmp_path, num_classes=10, resolution=16)
    assert arch.to_dict()["choices"] == tiny_arch().to_dict()["choices"]
    for (name, a), b in zip(source.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ProxylessError, match="weights do not fit"):
        load_search_init(tmp_path, num_classes=5, resolution=16)
    save_checkpoint(tmp_path / "checkpoint.pt", {"arch": tiny_arch().to_dict()})
    with pytest.raises(ProxylessError, match="neither child_state_dict"):
        load_search_init(tmp_path, num_classes=10, resolution=16)


# training and exact resume -------------------------------------------------------------------------
def _run(out, max_steps=None, resume=False):
    dataset = synthetic_dataset(96, resolution=16, seed=1)
    seed_everything(0)
    net = tiny_net()
    train_model(net, dataset, tiny_recipe(), out, resume=resume, progress=False, max_steps=max_steps,
                log=lambda _: None)
    return load_checkpoint(out / "last.pt")


def _assert_same_state(a, b):
    for key in ("model", "weights"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for name in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][name], b["ema"]["module"][name]), name
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert torch.equal(a["rng_state"]["torch"], b["rng_state"]["torch"])
    assert a["global_step"] == b["global_step"] and a["epoch_totals"] == b["epoch_totals"]


def test_resume_is_bit_exact(tmp_path):
    full = _run(tmp_path / "full")
    _run(tmp_path / "cut", max_steps=4)  # stops inside epoch 0 (6 steps per epoch)
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (cut["epoch"], cut["step"]) == (0, 4)
    _run(tmp_path / "cut", max_steps=9, resume=True)  # into epoch 1
    resumed = _run(tmp_path / "cut", resume=True)
    _assert_same_state(full, resumed)
    assert resumed["epoch"] == 2 and full["global_step"] == 12
    lines_full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    lines_cut = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines_full) == len(lines_cut) == 2
    for x, y in zip(lines_full, lines_cut):
        x.pop("epoch_seconds"), y.pop("epoch_seconds")
        assert x == y
    assert (tmp_path / "full" / "best.pt").exists()


def test_training_learns_and_guards_the_out_folder(tmp_path):
    dataset = synthetic_dataset(160, num_classes=4, resolution=16, seed=2)
    seed_everything(0)
    net = tiny_net(num_classes=4, dropout=0.0)
    record = train_model(net, dataset, tiny_recipe(epochs=4, lr=0.1, ema_decay=0.0), tmp_path,
                         progress=False, log=lambda _: None)
    assert record["test_top1"] > 50.0  # chance is 25%
    with pytest.raises(ProxylessError, match="already holds an earlier run"):
        train_model(net, dataset, tiny_recipe(), tmp_path, progress=False, log=lambda _: None)
    with pytest.raises(ProxylessError, match=r"differ from the run being resumed \(ema_decay, epochs\)"):
        train_model(net, dataset, tiny_recipe(epochs=5), tmp_path, resume=True, progress=False)


# command line ------------------------------------------------------------------------------------
def test_cli_train_resume_eval(tmp_path, capsys):
    tiny_arch().save(tmp_path / "arch.json")
    out = tmp_path / "run"
    args = ["train", str(tmp_path / "arch.json"), "warmup_epochs=0.5", "eval_batch_size=32",
            "--dataset", SPEC, "--epochs", "2", "--batch-size", "16", "--out", str(out), "--no-progress"]
    assert main(args + ["--max-steps", "3"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 3
    assert main(args + ["--resume"]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert main(["eval", str(out / "best.pt"), "--dataset", SPEC, "--no-progress"]) == 0
    report = json.loads((out / "eval-best.json").read_text())
    assert report["samples"] == 24 and len(report["per_class"]) == 10
    assert sum(map(sum, report["confusion"])) == 24
    assert (out / "confusion-best.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["eval", str(out / "best.pt"), "--dataset", "synthetic:96?resolution=24"]) == 2
    assert "?resolution=16" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated")
    assert main(["eval", str(tmp_path / "bad.pt"), "--dataset", SPEC]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: corrupt or truncated checkpoint") and err.count("\n") == 1
    assert main(["train", "nope_net", "--dataset", SPEC, "--out", str(tmp_path / "x")]) == 2
    assert "neither a zoo name" in capsys.readouterr().err
    assert main(["train", "mobilenet_v2", "learning_rate=1", "--dataset", SPEC]) == 2
    assert "unknown recipe key" in capsys.readouterr().err
    assert main(["train", "mobilenet_v2", "--threads", "0", "--dataset", SPEC]) == 2
    assert "argument --threads: 0 is not a positive integer" in capsys.readouterr().err


def test_cli_train_threads_sets_torch_threads(tmp_path):
    tiny_arch().save(tmp_path / "arch.json")
    before = torch.get_num_threads()
    try:
        args = ["train", str(tmp_path / "arch.json"), "--dataset", SPEC, "--epochs", "1", "--max-steps", "1",
                "--batch-size", "16", "eval_batch_size=32"]
        assert main(args + ["--threads", "1", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_init_from_supernet_checkpoint_and_cli(tmp_path):
    supernet_module = pytest.importorskip("proxylessnas.supernet")
    seed_everything(4)
    space = get_space("tiny", num_classes=10)
    supernet = supernet_module.SuperNet(space)
    arch = Arch.from_ops(space, [layer.candidates[-1].token for layer in space.searched_layers])
    save_checkpoint(tmp_path / "checkpoint.pt", {"arch": arch.to_dict(), "supernet": supernet.state_dict()})
    net, loaded_arch = load_search_init(tmp_path, num_classes=10, resolution=16)
    expected = supernet.derive(arch, inherit=True).eval()
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(net.eval()(x), expected(x), rtol=0, atol=0)
    out = tmp_path / "run"
    assert main(["train", "ignored", "warmup_epochs=0.5", "--init-from", str(tmp_path), "--dataset", SPEC,
                 "--epochs", "1", "--batch-size", "16", "--bn-batches", "3", "--out", str(out),
                 "--no-progress"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["bn_recalibration_batches"] == 3 and run["init_from"] == str(tmp_path)
