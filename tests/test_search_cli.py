"""`proxyless search` and `proxyless plot`: a quick run end to end, and bad input as one line, exit 2."""

from __future__ import annotations

import json

import pytest

from proxylessnas.cli import main
from proxylessnas.search.config import SearchConfig, config_names, load_config

FLAGS = ["--space", "tiny", "--hardware", "flops", "--epochs", "1", "--warmup-epochs", "1", "--no-progress"]
OVERRIDES = ["search.steps_per_epoch=3", "data.batch_size=16",
         "data.valid_batch_size=16", "data.valid_size=32", "data.eval_batch_size=64", "arch.update_every=1",
         "arch.skip_first_epoch=false", "run.threads=1", "run.eval_batches=1",
         "run.bn_recalibration_batches=1"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_every_shipped_recipe_loads_and_demo_is_the_default():
    names = config_names()
    assert {"demo", "cifar10", "imagenet-mobile", "imagenet-cpu", "imagenet-gpu"} <= set(names)
    for name in names:
        assert isinstance(load_config(name), SearchConfig)
    demo = load_config("demo")
    assert demo.data.dataset == "demo" and demo.hardware.target == "cpu" and demo.latency.mode == "band"
    mobile = load_config("imagenet-mobile")  # the paper's search hyper-parameters
    assert (mobile.search.warmup_epochs, mobile.search.epochs, mobile.data.batch_size) == (40, 120, 256)
    assert (mobile.arch.lr, mobile.arch.beta1, mobile.weights.lr) == (1e-3, 0.0, 0.025)


def test_search_end_to_end_writes_the_run_directory_and_plot_redraws(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--dataset", "synthetic:120", *FLAGS, "--out", str(out), *OVERRIDES]) == 0
    printed = capsys.readouterr().out
    assert "chosen architecture" in printed and "test accuracy" in printed
    for name in ("arch.json", "config.yaml", "metrics.jsonl", "checkpoint.pt", "summary.json"):
        assert (out / name).is_file(), name
    arch = json.loads((out / "arch.json").read_text())
    assert arch["space"] == "tiny" and arch["metadata"]["predicted_latency"] > 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == ["warmup", "search"]
    assert (out / "plots" / "architecture.png").is_file()
    (out / "plots" / "architecture.png").unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "plots" / "architecture.png").is_file()
    # a second search into the same folder would overwrite it: refused
    assert main(["search", "--dataset", "synthetic:120", *FLAGS, "--out", str(out), *OVERRIDES]) == 2
    assert "already holds an earlier run" in one_error_line(capsys)


@pytest.mark.parametrize("arguments, message", [
    (["--dataset", "nosuchset"], "unknown dataset"),
    (["--dataset", "cifar10:/nonexistent/folder"], "not found"),
    (["--dataset", "imagefolder:{bad_file}"], ""),
    (["--dataset", "cifar10:{empty_dir}"], "CIFAR-10 layout"),
    (["search.epochz=3"], "unknown config key 'search.epochz'"),
    (["bogus.key=1"], "unknown config section"),
    (["--target-latency", "0.0001"], "below the cheapest"),
    (["--hardware", "no-such-hardware"], "hardware"),
    (["--config", "{bad_yaml}"], "malformed YAML"),
    (["--config", "no-such-recipe"], "config not found"),
    (["--space", "no-such-space"], "unknown search space"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, arguments, message):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("search: [unclosed\n")
    bad_file = tmp_path / "not_a_folder.txt"
    bad_file.write_text("x")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    (empty_dir / "readme.txt").write_text("no images here")
    arguments = [a.format(bad_yaml=bad_yaml, bad_file=bad_file, empty_dir=empty_dir) for a in arguments]
    flags = [a for a in arguments if "=" not in a or a.startswith("-")]
    overrides = [a for a in arguments if a not in flags]
    if "--dataset" not in flags:
        flags = ["--dataset", "synthetic:120", *flags]
    out = tmp_path / "run"
    code = main(["search", *FLAGS, "--out", str(out), *flags, *OVERRIDES, *overrides])
    assert code == 2
    assert message in one_error_line(capsys)
    assert not (out / "checkpoint.pt").exists()


def test_resume_of_missing_run_and_plot_of_missing_folder_exit_2(tmp_path, capsys):
    assert main(["search", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in one_error_line(capsys)
    assert main(["plot", str(tmp_path / "none")]) == 2
    assert "not found" in one_error_line(capsys)
