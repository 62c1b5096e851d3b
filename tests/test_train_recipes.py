"""Named recipe presets (``--recipe``), cutout and drop-path: values, CLI, statistics, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from proxylessnas import ProxylessError, get_space
from proxylessnas.cli import main
from proxylessnas.data import synthetic_dataset
from proxylessnas.data.cutout import apply_cutout, cutout_mask
from proxylessnas.data.iterator import BatchIterator
from proxylessnas.nets.drop_path import keep_factors
from proxylessnas.nets.graph_net import GraphNet, graph_net_config
from proxylessnas.nets.pyramid_tree_zoo import PROXYLESS_CIFAR_CELLS, cells_arch
from proxylessnas.runtime.checkpoint import load_checkpoint
from proxylessnas.runtime.seeding import seed_everything
from proxylessnas.train.recipe import (
    RECIPES,
    TrainRecipe,
    cifar_recipe,
    drop_path_rate,
    named_recipe,
    pyramid_tree_cifar_recipe,
)
from proxylessnas.train.run import train_model
from proxylessnas.train.target import recipe_name_for

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors on a shared CPU
NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|"


def tiny_tree_net(num_classes: int = 10) -> GraphNet:
    """A pyramid-tree net of 3 blocks (one a stage) at 16x16: 36 leaf edges, ~8k parameters."""
    space = get_space("pyramid-tree", blocks_per_stage=1, alpha=6, stem_width=4, bottleneck=1,
                      resolution=16, num_classes=num_classes)
    return GraphNet(graph_net_config(space, cells_arch(space, PROXYLESS_CIFAR_CELLS[:3])))


# presets ------------------------------------------------------------------------------------------
def test_pyramid_tree_cifar_preset_values():
    recipe = pyramid_tree_cifar_recipe()
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.warmup_epochs) == (600, 64, 0.1, 0.0)
    assert (recipe.momentum, recipe.nesterov, recipe.weight_decay) == (0.9, True, 1e-4)
    assert recipe.label_smoothing == 0
    assert (recipe.cutout, recipe.drop_path, recipe.drop_path_schedule) == (16, 0.0, "constant")
    assert recipe.amp and recipe.channels_last
    assert set(RECIPES) == {"cifar", "imagenet", "nasbench201", "demo", "pyramid-tree-cifar"}
    assert named_recipe("cifar") == cifar_recipe() and cifar_recipe().cutout == 0
    with pytest.raises(ProxylessError, match="unknown recipe 'cifar10'.*use one of cifar, imagenet"):
        named_recipe("cifar10")
    assert recipe.with_overrides(["cutout=8", "drop_path=0.2", "drop_path_schedule=linear"]).cutout == 8
    with pytest.raises(ProxylessError, match="drop_path"):
        TrainRecipe(drop_path=1.0)
    with pytest.raises(ProxylessError, match="drop_path_schedule"):
        TrainRecipe(drop_path_schedule="cosine")


def test_default_preset_follows_the_net(tmp_path):
    assert recipe_name_for("proxyless_cifar") == "pyramid-tree-cifar"
    assert recipe_name_for(NB201) == "nasbench201"
    assert recipe_name_for("mobilenet_v2") is None
    space = get_space("pyramid-tree", blocks_per_stage=1, alpha=6, stem_width=4, bottleneck=1)
    cells_arch(space, PROXYLESS_CIFAR_CELLS[:3]).save(tmp_path / "tree.json")
    assert recipe_name_for(str(tmp_path / "tree.json")) == "pyramid-tree-cifar"


def test_drop_path_schedules():
    constant = TrainRecipe(epochs=4, drop_path=0.2, warmup_epochs=0)
    linear = TrainRecipe(epochs=4, drop_path=0.2, warmup_epochs=0, drop_path_schedule="linear")
    assert [drop_path_rate(constant, t, 10) for t in (0, 20, 40)] == [0.2, 0.2, 0.2]
    assert [drop_path_rate(linear, t, 10) for t in (0, 20, 40)] == pytest.approx([0.0, 0.1, 0.2])


# cutout -------------------------------------------------------------------------------------------
def test_cutout_masks_the_square_clipped_at_the_border():
    ys, xs = torch.tensor([8, 0, 15]), torch.tensor([8, 0, 2])
    mask = cutout_mask(ys, xs, 6, 16, 16)
    assert mask.shape == (3, 1, 16, 16)
    assert [int((m == 0).sum()) for m in mask] == [36, 9, 4 * 5]  # inside; corner 3x3; rows 12-15 x cols 0-4
    assert torch.all(mask[0, 0, 5:11, 5:11] == 0) and mask[0, 0, 4, 8] == 1 and mask[0, 0, 11, 8] == 1
    images = torch.randn(3, 2, 16, 16)
    cut = apply_cutout(images, ys, xs, 6)
    assert torch.equal(cut, images * mask)


def _iterator(cutout: int) -> BatchIterator:
    data = synthetic_dataset(40, resolution=16, seed=3)
    return BatchIterator.for_dataset(data, data.train, 8, augment=True, seed=5, drop_last=True, cutout=cutout)


def test_cutout_batches_depend_only_on_seed_epoch_step():
    with_cut, without = _iterator(8), _iterator(0)
    first = list(with_cut.epoch(2))
    again = list(_iterator(8).epoch(2, start_step=3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first[3:], again))
    for (x, y), (x0, y0) in zip(first, without.epoch(2)):
        assert torch.equal(y, y0)
        cut = x == 0
        assert torch.equal(x[~cut], x0[~cut])  # crops and flips are those of a run without cutout
        per_image = cut[:, 0].flatten(1).sum(1)
        assert int(per_image.max()) <= 64 and int(per_image.min()) >= 16  # 8x8, at least a 4x4 corner
    assert not torch.equal(first[0][0], list(with_cut.epoch(3))[0][0])


# drop-path ----------------------------------------------------------------------------------------
def test_drop_path_keeps_expectation_and_rate():
    torch.manual_seed(0)
    keep = keep_factors(4, 5000, 0.3, torch.device("cpu"))
    assert keep.shape == (4, 5000)
    dropped = (keep == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.015  # ~4.6 standard errors of a Bernoulli(0.3) mean over 20k draws
    assert torch.all((keep == 0) | torch.isclose(keep, torch.full_like(keep, 1 / 0.7)))
    assert abs(keep.mean().item() - 1.0) < 0.04


def test_graph_net_drop_path_units_and_modes():
    net = tiny_tree_net()
    edges = net.net_config.space.edges
    units = [tuple(edges[i].label.split(".", 2)[2] for i in unit) for unit in net.drop_path_units]
    assert len(units) == 3 * 14 and units[:14] == [
        ("e000",), ("e001",), ("e010",), ("e011",), ("e100",), ("e101",), ("e110",), ("e111",),
        ("e000", "e001"), ("e010", "e011"), ("e100", "e101"), ("e110", "e111"),
        ("branch_bn0", "branch_skip0"), ("branch_bn1", "branch_skip1")]
    x = torch.randn(4, 3, 16, 16)
    net.eval()
    reference = net(x)
    net.drop_path_rate = 0.5
    assert torch.equal(net(x), reference)  # identity in evaluation
    net.train()
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(1)
    assert torch.equal(net(x), a)  # masks come from the global generator: reproducible
    net.drop_path_rate = 0.0
    torch.manual_seed(1)
    assert not torch.allclose(net(x), a)


def test_leaf_factors_compose_and_all_kept_is_no_drop(monkeypatch):
    net = tiny_tree_net()
    leaf, branch = net.drop_path_units[0][0], net.drop_path_units[12][0]
    assert net._edge_units[leaf] == (0, 8) and net._edge_units[branch] == (12,)  # leaf: own x level-2
    net.train()
    x = torch.randn(4, 3, 16, 16)
    reference = net(x)
    calls = []

    def all_kept(units, batch, rate, device, dtype=torch.float32):
        calls.append((units, batch, rate))
        return torch.ones(units, batch)

    monkeypatch.setattr("proxylessnas.nets.graph_net.keep_factors", all_kept)
    net.drop_path_rate = 0.3
    assert torch.equal(net(x), reference) and calls == [(42, 4, 0.3)]  # one draw per forward


# training with both, interrupted and resumed -------------------------------------------------------
RECIPE = TrainRecipe(epochs=2, batch_size=16, lr=0.05, warmup_epochs=0.0, eval_batch_size=48,
                     weight_decay=1e-4, label_smoothing=0.0, cutout=8, drop_path=0.2,
                     drop_path_schedule="linear")


def _run(out, max_steps=None, resume=False):
    dataset = synthetic_dataset(80, resolution=16, seed=1)
    seed_everything(0)
    train_model(tiny_tree_net(), dataset, RECIPE, out, resume=resume, progress=False, max_steps=max_steps,
                log=lambda _: None)
    return load_checkpoint(out / "last.pt")


def test_cutout_and_drop_path_resume_bit_exact(tmp_path):
    full = _run(tmp_path / "full")
    _run(tmp_path / "cut", max_steps=3)  # 5 steps an epoch: stops inside epoch 0
    resumed = _run(tmp_path / "cut", resume=True)
    assert resumed["epoch"] == 2 and full["global_step"] == 10
    for name in full["model"]:
        assert torch.equal(full["model"][name], resumed["model"][name]), name
    for sa, sb in zip(full["optimizer"]["state"].values(), resumed["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert torch.equal(full["rng_state"]["torch"], resumed["rng_state"]["torch"])
    rows = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("full", "cut")]
    for x, y in zip(*rows):
        x.pop("epoch_seconds"), y.pop("epoch_seconds")
        assert x == y
    run = json.loads((tmp_path / "full" / "run.json").read_text())
    assert (run["recipe"]["cutout"], run["recipe"]["drop_path"]) == (8, 0.2)


def test_drop_path_needs_units(tmp_path):
    from proxylessnas import Arch
    from proxylessnas.nets.config import net_config
    from proxylessnas.nets.net import ProxylessNet

    space = get_space("tiny")
    arch = Arch.from_ops(space, [layer.candidates[1].token for layer in space.searched_layers])
    recipe = TrainRecipe(epochs=1, batch_size=16, drop_path=0.1, warmup_epochs=0)
    with pytest.raises(ProxylessError, match="no drop-path units"):
        train_model(ProxylessNet(net_config(space, arch)), synthetic_dataset(32, resolution=16), recipe,
                    tmp_path, progress=False, log=lambda _: None)


# command line -------------------------------------------------------------------------------------
def test_cli_recipe_preset_and_overrides(tmp_path, capsys):
    spec = "synthetic:64?resolution=16&seed=1"
    assert main(["train", "mobilenet_v2", "--recipe", "nope", "--dataset", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown recipe 'nope'" in err and "pyramid-tree-cifar" in err
    space = get_space("pyramid-tree", blocks_per_stage=1, alpha=6, stem_width=4, bottleneck=1)
    cells_arch(space, PROXYLESS_CIFAR_CELLS[:3]).save(tmp_path / "tree.json")
    out = tmp_path / "run"
    args = ["train", str(tmp_path / "tree.json"), "--dataset", spec, "--out", str(out), "--no-progress",
            "--max-steps", "1", "epochs=1", "batch_size=16", "eval_batch_size=64", "drop_path=0.1"]
    assert main(args) == 0  # default preset of a pyramid-tree arch: pyramid-tree-cifar
    assert "warning: cutout=16 px is more than half the 16 px image side" in capsys.readouterr().err
    recipe = json.loads((out / "run.json").read_text())["recipe"]
    assert (recipe["cutout"], recipe["weight_decay"]) == (16, 1e-4)  # the preset's
    assert (recipe["drop_path"], recipe["epochs"]) == (0.1, 1)  # the overrides
    out2 = tmp_path / "run2"
    assert main([*args[:5], str(out2), *args[6:], "--recipe", "demo"]) == 0
    recipe = json.loads((out2 / "run.json").read_text())["recipe"]
    assert (recipe["cutout"], recipe["weight_decay"], recipe["label_smoothing"]) == (0, 5e-4, 0.1)
    assert main(["train", "--resume", "--out", str(out), "--recipe", "cifar"]) == 2
    assert "--recipe with --resume" in capsys.readouterr().err
