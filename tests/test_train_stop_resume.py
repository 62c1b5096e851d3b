"""Clean stops and recovery: SIGTERM / SIGINT on a training run save the position and resume to the
same weights; --resume with nothing to resume is an error; after a NaN the learning rate may change
on a resume (search and train), recorded in the config history; settings that change the run's
shape are still refused."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from proxylessnas import Arch, ProxylessError, get_space
from proxylessnas.cli import main
from proxylessnas.data import synthetic_dataset
from proxylessnas.runtime.checkpoint import load_checkpoint
from proxylessnas.runtime.resume_changes import accept_changes, keeping_hyperparameters
from proxylessnas.runtime.seeding import seed_everything
from proxylessnas.search.config import SearchConfig
from proxylessnas.search.run import run_search
from proxylessnas.train import loops
from proxylessnas.train.recipe import TrainRecipe
from proxylessnas.train.run import train_model
from proxylessnas.train.target import build_target
from test_runfolder_lock import QUICK

TIMEOUT = 120  # seconds the helper process may live; a failure never hangs the suite
SPEC = "synthetic:96?resolution=16&seed=1"  # 96 training images: 6 steps of 16 per epoch
RECIPE = ["warmup_epochs=0.5", "eval_batch_size=32", "ema_decay=0.9", "--epochs", "2", "--batch-size", "16"]
SEARCH = QUICK  # the tiny search of the lock tests

# `proxyless train ...` that waits inside its STOP_AT-th step (before the backward pass) until the
# gate file appears: the test sends SIGTERM there, as a user would in mid-epoch
GATED_TRAIN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from proxylessnas.cli import main
    from proxylessnas.train import loops
    gate, stop_at = Path(sys.argv[1]), int(sys.argv[2])
    original, calls = loops.check_finite, [0]

    def gated(what, value):
        calls[0] += 1
        if calls[0] == stop_at:
            print("in step", flush=True)
            deadline = time.monotonic() + 60
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return original(what, value)

    loops.check_finite = gated
    sys.exit(main(sys.argv[3:]))
""")


@pytest.fixture
def arch_file(tmp_path):
    space = get_space("tiny")
    path = tmp_path / "arch.json"
    Arch.from_ops(space, [layer.candidates[1].token for layer in space.searched_layers]).save(path)
    return path


def train_args(arch_file, out, *extra: str) -> list[str]:
    return ["train", str(arch_file), *RECIPE, "--dataset", SPEC, "--out", str(out), "--threads", "1",
            "--no-progress", *extra]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def metric_lines(out) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows]


def assert_same_run(a, b) -> None:
    """Every tensor of two training checkpoints equal (weights, EMA, momentum, RNG), same position."""
    for key in ("model", "weights"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for name in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][name], b["ema"]["module"][name]), name
    assert a["ema"]["updates"] == b["ema"]["updates"]
    assert len(a["optimizer"]["state"]) == len(b["optimizer"]["state"]) > 0
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert torch.equal(a["rng_state"]["torch"], b["rng_state"]["torch"])
    for key in ("epoch", "step", "global_step", "epoch_totals", "best_top1"):
        assert a[key] == b[key], key


# clean stops ---------------------------------------------------------------------------------------
def test_sigterm_mid_epoch_saves_the_position_and_resume_equals_an_uninterrupted_run(tmp_path, arch_file,
                                                                                    capsys, single_thread):
    assert main(train_args(arch_file, tmp_path / "full")) == 0
    out, gate = tmp_path / "cut", tmp_path / "gate"
    process = subprocess.Popen([sys.executable, "-c", GATED_TRAIN, str(gate), "8",
                                *train_args(arch_file, out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()
        while line and line.strip() != "in step":  # the dataset and net lines come first
            line = process.stdout.readline()
        assert line.strip() == "in step", process.communicate(timeout=TIMEOUT)
        process.send_signal(signal.SIGTERM)  # inside step 2 of epoch 2: that step still finishes
        gate.touch()
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        gate.touch()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines() == [
        f"error: train stopped by SIGTERM at epoch 2 step 2 ({out / 'last.pt'}): resume with "
        f"'proxyless train --resume --out {out}'"]
    cut = load_checkpoint(out / "last.pt")
    assert (cut["epoch"], cut["step"], cut["global_step"]) == (1, 2, 8)
    assert len(metric_lines(out)) == 1 and not (out / ".lock").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    # the printed command, as typed (net, dataset and recipe come from the run)
    command = shlex.split(stderr.split("resume with ")[1].strip().strip("'"))
    assert main([*command[1:], "--threads", "1", "--no-progress"]) == 0
    full, resumed = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(out / "last.pt")
    assert_same_run(full, resumed)
    assert resumed["epoch"] == 2 and resumed["config_history"] == []
    assert_same_run(load_checkpoint(tmp_path / "full" / "best.pt"), load_checkpoint(out / "best.pt"))
    assert metric_lines(tmp_path / "full") == metric_lines(out)


def test_sigint_finishes_the_step_and_exits_130(tmp_path, arch_file, monkeypatch, capsys, single_thread):
    calls = [0]
    original = loops.check_finite

    def interrupt(what, value):  # Ctrl-C inside step 3
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(what, value)

    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(loops, "check_finite", interrupt)
    out = tmp_path / "run"
    assert main(train_args(arch_file, out)) == 130
    assert "stopped by SIGINT at epoch 1 step 3" in one_error_line(capsys)
    assert signal.getsignal(signal.SIGINT) is before  # handlers put back
    state = load_checkpoint(out / "last.pt")
    assert (state["epoch"], state["step"], state["epoch_totals"]["steps"]) == (0, 3, 3)
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 2 and len(metric_lines(out)) == 2


def test_search_stops_the_same_way_and_its_resume_command_runs(tmp_path, monkeypatch, capsys):
    import proxylessnas.search.run as search_run

    calls = [0]
    original = search_run.check_finite

    def terminate(what, value):  # SIGTERM inside weight step 2
        calls[0] += 1
        if calls[0] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(what, value)

    monkeypatch.setattr(search_run, "check_finite", terminate)
    out, recipe = tmp_path / "run", tmp_path / "quick.yaml"
    SearchConfig().with_overrides(SEARCH).save(recipe)
    assert main(["search", "--config", str(recipe), "--out", str(out)]) == 143
    line = one_error_line(capsys)
    assert line == (f"error: search stopped by SIGTERM at epoch 1 step 2 ({out / 'checkpoint.pt'}): resume "
                    f"with 'proxyless search --resume --out {out}'")
    state = load_checkpoint(out / "checkpoint.pt")
    assert (state["epoch"], state["step"], state["finished"]) == (0, 2, False)
    monkeypatch.setattr(search_run, "check_finite", original)
    assert main(shlex.split(line.split("resume with ")[1].strip("'"))[1:]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["finished"]


def test_resume_with_nothing_to_resume_is_one_line_and_writes_nothing(tmp_path, arch_file, capsys):
    out = tmp_path / "none"
    assert main(["train", "--resume", "--out", str(out)]) == 2
    assert one_error_line(capsys) == (f"error: nothing to resume: no last.pt ({out}): start the training "
                                      "without --resume")
    assert main(train_args(arch_file, out, "--resume")) == 2
    assert "nothing to resume" in one_error_line(capsys)
    assert main(["train", "--resume"]) == 2
    assert "--resume without a net needs --out" in one_error_line(capsys)
    assert not out.exists()
    net = build_target(str(arch_file), num_classes=10, resolution=16)[0]
    with pytest.raises(ProxylessError, match="nothing to resume"):
        train_model(net, synthetic_dataset(32, resolution=16), TrainRecipe(epochs=1, warmup_epochs=0), out,
                    resume=True, progress=False)
    assert not out.exists()


# recovery after a NaN --------------------------------------------------------------------------------
def test_train_nan_advice_is_a_command_that_runs_and_a_lower_lr_is_recorded(tmp_path, arch_file, capsys,
                                                                           single_thread):
    out = tmp_path / "run"
    assert main(train_args(arch_file, out, "--max-steps", "4")) == 0
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "lr=1e30", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "training loss became nan at epoch 1 step" in line
    assert line.endswith(f"the last good checkpoint (last.pt) is kept; lower the learning rate and resume: "
                         f"proxyless train --resume --out {out} lr=5e+29")
    assert (out / "last.pt").read_bytes() == before  # nothing of the failed resume is kept
    assert json.loads((out / "run.json").read_text())["recipe"]["lr"] == 0.1  # the CIFAR-size recipe's
    # the advice as typed is accepted (not "settings differ"): here it is still too high
    command = shlex.split(line.split("resume: ")[1])
    assert main([*command[1:], "--no-progress"]) == 2
    assert "lower the learning rate and resume" in one_error_line(capsys)
    # a learning rate that works (and another momentum): the run finishes, the changes are in the history
    assert main([*command[1:-1], "lr=0.025", "momentum=0.8", "--no-progress"]) == 0
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 2 and state["run"]["recipe"]["lr"] == 0.025
    assert {group["momentum"] for group in state["optimizer"]["param_groups"]} == {0.8}  # not the saved 0.9
    history = state["config_history"]
    assert [(h["epoch"], h["step"], h["changed"]) for h in history] == [
        (1, 4, {"lr": {"from": 0.1, "to": 0.025}, "momentum": {"from": 0.9, "to": 0.8}})]
    run = json.loads((out / "run.json").read_text())
    assert run["config_history"] == history and run["recipe"]["lr"] == 0.025
    assert len(metric_lines(out)) == 2
    assert "resumed" in capsys.readouterr().out


def test_train_resume_refuses_settings_that_change_the_runs_shape(tmp_path, arch_file, capsys):
    out = tmp_path / "run"
    assert main(train_args(arch_file, out, "--max-steps", "2")) == 0
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    for extra, named in ((["--epochs", "3"], "(epochs)"), (["batch_size=8", "seed=3"], "(batch_size, seed)"),
                         (["ema_decay=0.5"], "(ema_decay)")):
        assert main(["train", "--resume", "--out", str(out), *extra, "--no-progress"]) == 2
        line = one_error_line(capsys)
        assert f"settings differ from the run being resumed {named} and would change its shape" in line
        assert "a resume may change only amp, channels_last" in line
    assert main(["train", "--resume", "--out", str(out), "--dataset", "synthetic:80?resolution=16&seed=1",
                 "--no-progress"]) == 2
    assert "the dataset differs from the saved run (train_images 96, now 80)" in one_error_line(capsys)
    assert main(["train", "mobilenet_v2", "--resume", "--out", str(out), "--no-progress"]) == 2
    assert "the net differs from the saved run" in one_error_line(capsys)
    assert (out / "last.pt").read_bytes() == before


def test_search_nan_advice_is_a_command_that_runs_and_a_lower_lr_is_recorded(tmp_path, capsys):
    out = tmp_path / "run"
    run_search(SearchConfig().with_overrides([*SEARCH, f"run.out={out}"]), stop_after_epoch=0)
    before = (out / "checkpoint.pt").read_bytes()
    assert main(["search", "--resume", "--out", str(out), "weights.lr=1e30"]) == 2
    line = one_error_line(capsys)
    # the weights blow up, the architecture loss (on those weights) is the first NaN: both rates halved
    assert "architecture loss became nan at epoch 2 step 1 of 3 " in line  # epochs count from 1
    assert line.endswith(f"the last good checkpoint ({out / 'checkpoint.pt'}) is kept; lower the learning "
                         f"rate and resume: proxyless search --resume --out {out} weights.lr=5e+29 "
                         "arch.lr=0.0005")
    assert (out / "checkpoint.pt").read_bytes() == before
    assert "lr: 0.025" in (out / "config.yaml").read_text()  # the failed resume's lr is not kept
    command = shlex.split(line.split("resume: ")[1])
    assert main(command[1:]) == 2  # accepted as typed; still too high
    assert "weights.lr=2.5e+29 arch.lr=0.00025" in one_error_line(capsys)
    assert main([*command[1:-2], "weights.lr=0.0125", "arch.lr=0.002"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    changed = {"arch.lr": {"from": 0.001, "to": 0.002}, "weights.lr": {"from": 0.025, "to": 0.0125}}
    assert [(h["epoch"], h["step"], h["changed"]) for h in summary["config_history"]] == [(2, 0, changed)]
    assert load_checkpoint(out / "checkpoint.pt")["config_history"] == summary["config_history"]
    saved = SearchConfig.from_dict(yaml.safe_load((out / "config.yaml").read_text()))
    assert (saved.weights.lr, saved.arch.lr) == (0.0125, 0.002)


def test_search_nan_before_any_checkpoint_names_the_warmup_lr(tmp_path):
    config = SearchConfig().with_overrides([*SEARCH, f"run.out={tmp_path / 'r'}", "weights.warmup_lr=1e30"])
    with pytest.raises(ProxylessError) as caught:
        run_search(config)
    line = caught.value.line()
    assert "weight loss became nan at epoch 1 step" in line
    assert line.endswith("no checkpoint was written yet; lower the learning rate: rerun the same command "
                         "with weights.warmup_lr=5e+29")


def test_search_resume_refuses_settings_that_change_the_runs_shape(tmp_path, capsys):
    out = tmp_path / "run"
    run_search(SearchConfig().with_overrides([*SEARCH, f"run.out={out}"]), stop_after_epoch=0)
    capsys.readouterr()
    for extra, named in ((["data.batch_size=8"], "data.batch_size"),
                         (["--space", "proxyless-cifar"], "space"),
                         (["search.epochs=4", "arch.update_every=2"], "arch.update_every, search.epochs"),
                         (["run.seed=7"], "run.seed")):  # the seed draws the data split
        assert main(["search", "--resume", "--out", str(out), *extra]) == 2
        assert f"settings differ from the run being resumed ({named}" in one_error_line(capsys)


def test_search_resume_ignores_the_sections_its_strategy_never_reads(tmp_path, capsys):
    """A gradient search resumes after a recipe's REINFORCE settings changed; a REINFORCE search
    does not."""
    out = tmp_path / "run"
    run_search(SearchConfig().with_overrides([*SEARCH, f"run.out={out}"]), stop_after_epoch=0)
    capsys.readouterr()
    gradient = SearchConfig().with_overrides([*SEARCH, "reinforce.reward_exponent=0"])
    assert "reinforce.reward_exponent" not in gradient.resume_settings()
    assert main(["search", "--resume", "--out", str(out), "reinforce.reward_exponent=0",
                 "reinforce.samples=3"]) == 0
    reinforce = SearchConfig().with_overrides([*SEARCH, "search.strategy=reinforce"])
    assert reinforce.resume_settings()["reinforce.reward_exponent"] == 0.1


# the pieces -------------------------------------------------------------------------------------------
def test_accept_changes_names_only_the_refused_keys():
    assert accept_changes({"lr": 0.1, "epochs": 3}, {"lr": 0.05, "epochs": 3}, {"lr"}, "here") == {
        "lr": {"from": 0.1, "to": 0.05}}
    assert accept_changes({"lr": 0.1}, {"lr": 0.1}, set(), "here") == {}
    with pytest.raises(ProxylessError, match=r"\(epochs, seed\) and would change"):
        accept_changes({"lr": 0.1, "epochs": 3, "seed": 0}, {"lr": 0.2, "epochs": 4, "seed": 1}, {"lr"},
                       "here")


def test_loaded_optimiser_state_keeps_the_new_hyperparameters():
    seed_everything(0)
    weights = torch.nn.Parameter(torch.randn(3))
    old = torch.optim.SGD([weights], lr=0.1, momentum=0.9, weight_decay=1e-4)
    weights.grad = torch.ones(3)
    old.step()
    new = torch.optim.SGD([weights], lr=0.01, momentum=0.5, weight_decay=0.0)
    with keeping_hyperparameters(new):
        new.load_state_dict(old.state_dict())
    group = new.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.5, 0.0)
    assert torch.equal(new.state[weights]["momentum_buffer"], old.state[weights]["momentum_buffer"])
    plain = torch.optim.SGD([weights], lr=0.01, momentum=0.5)
    plain.load_state_dict(old.state_dict())
    assert plain.param_groups[0]["momentum"] == 0.9  # what torch does alone: the saved values come back


def test_sigterm_while_the_data_loads_is_one_line_and_exit_143(tmp_path, arch_file, monkeypatch, capsys):
    """Before the loop saves anything (here: while the dataset loads) SIGTERM is one line too."""
    import proxylessnas.data

    def killed_while_loading(spec, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM should have stopped the command")

    monkeypatch.setattr(proxylessnas.data, "load_dataset", killed_while_loading)
    before = signal.getsignal(signal.SIGTERM)
    assert main(train_args(arch_file, tmp_path / "run")) == 143
    line = one_error_line(capsys)
    assert line.startswith("error: terminated (SIGTERM) before the run saved its position")
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    assert not (tmp_path / "run" / "last.pt").exists()
