"""Every bad argument ends as one line ``error: ...`` and exit code 2, before any work: no traceback,
no file written (issue 20, items 3 and 7)."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import pytest
from PIL import Image

from proxylessnas import arguments
from proxylessnas.cli import main
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.lut import LatencyTable, TableTarget
from proxylessnas.space import get_space
from proxylessnas.space.arch import Arch

SEARCH = ["search", "--space", "tiny", "--hardware", "flops", "--epochs", "1", "--warmup-epochs", "1",
          "--no-progress", "--out", "{tmp}/run"]
DATA = ["--dataset", "synthetic:64"]
TRAIN = ["train", "{arch}", "--dataset", "synthetic:64", "--epochs", "1", "--batch-size", "16",
         "--no-progress"]
EVAL = ["eval", "{checkpoint}", "--dataset", "synthetic:64", "--no-progress"]
EXPORT = ["export", "{arch}", "--format", "onnx"]
BUILD = ["latency", "build", "--space", "tiny", "--out", "{tmp}/table.json", "--no-progress"]
PREDICT = ["latency", "predict", "proxyless_cpu", "--hardware"]
ZOO = ["zoo", "show", "proxyless_cpu"]

CASES = {
    # search: config overrides, dataset options, --out, recipe file
    "arch.lr=inf": ([*SEARCH, *DATA, "arch.lr=inf"], "invalid value inf for arch.lr"),
    "run.threads=0": ([*SEARCH, *DATA, "run.threads=0"], "invalid value 0 for run.threads"),
    "run.threads=-2": ([*SEARCH, *DATA, "run.threads=-2"], "invalid value -2 for run.threads"),
    "search.epochs=inf": ([*SEARCH, *DATA, "search.epochs=inf"], "search.epochs"),
    "weights.momentum=1": ([*SEARCH, *DATA, "weights.momentum=1"], "weights.momentum"),
    "run.seed=-1": ([*SEARCH, *DATA, "run.seed=-1"], "run.seed"),
    "data.valid_size=1.5": ([*SEARCH, *DATA, "data.valid_size=1.5"], "data.valid_size"),
    "search.weight_paths=fair": ([*SEARCH, *DATA, "search.weight_paths=fair"],
                                 "invalid value 'fair' for search.weight_paths"),
    "uniform paths with darts": ([*SEARCH, *DATA, "search.weight_paths=uniform", "search.mixed_op=darts"],
                                 "uniform weight paths need search.mixed_op=binary"),
    "?resolution=0": ([*SEARCH, "--dataset", "synthetic:64?resolution=0"],
                      "resolution=0 is not an input side"),
    "?limit_per_class=-1": ([*SEARCH, "--dataset", "synthetic:64?limit_per_class=-1"],
                            "limit_per_class=-1 is not a positive integer"),
    "search --out file": ([*SEARCH, *DATA, "--out", "{file}"], "is a file, not a folder"),
    "run.out=file": ([*SEARCH, *DATA, "run.out={file}"], "run.out="),
    "search --target-latency nan": ([*SEARCH, *DATA, "--target-latency", "nan"], "argument --target-latency"),
    "search --nproc 0": ([*SEARCH, *DATA, "--nproc", "0"], "argument --nproc"),
    "empty recipe": ([*SEARCH, *DATA, "--config", "{empty}"], "the config is empty"),
    "search one class": ([*SEARCH, "--dataset", "imagefolder:{one_class}"], "at least two classes"),
    # train and eval
    "train --out file": ([*TRAIN, "--out", "{file}"], "is a file, not a folder"),
    "train --max-steps -1": ([*TRAIN, "--max-steps", "-1"],
                             "argument --max-steps: -1 is not a positive integer"),
    "train --bn-batches -1": ([*TRAIN, "--bn-batches", "-1"], "argument --bn-batches"),
    "train --lr inf": ([*TRAIN, "--lr", "inf"], "argument --lr: inf is not a finite number > 0"),
    "train lr=inf": ([*TRAIN, "lr=inf"], "invalid recipe value lr=inf"),
    "train --seed -1": ([*TRAIN, "--seed", "-1"], "argument --seed"),
    "train --threads 0": ([*TRAIN, "--threads", "0"], "argument --threads"),
    "train --init-from file": ([*TRAIN, "--init-from", "{file}"], "is a file, not a folder"),
    "train one class": ([*TRAIN[:2], "--dataset", "imagefolder:{one_class}"], "needs at least two classes"),
    "eval --out file": ([*EVAL, "--out", "{file}"], "is a file, not a folder"),
    "eval --batch-size 0": ([*EVAL, "--batch-size", "0"],
                            "argument --batch-size: 0 is not a positive integer"),
    "eval --batch-size -1": ([*EVAL, "--batch-size", "-1"], "argument --batch-size"),
    "eval missing checkpoint": (["eval", "{tmp}/absent.pt"], "does not exist"),
    # export
    "export --resolution -32": ([*EXPORT, "--resolution", "-32"], "argument --resolution"),
    "export --resolution 100000": ([*EXPORT, "--resolution", "100000"], "1 to 4096 pixels"),
    "export --resolution 0": ([*EXPORT, "--resolution", "0"], "argument --resolution"),
    "export --num-classes 0": ([*EXPORT, "--num-classes", "0"], "argument --num-classes"),
    "export --in-chs 0": ([*EXPORT, "--in-chs", "0"], "argument --in-chs"),
    "export --out folder": ([*EXPORT, "--out", "{folder}"], "is a folder"),
    "export --out under a file": ([*EXPORT, "--out", "{file}/m.onnx"], "is a file, not a folder"),
    "export --out m.txt": ([*EXPORT, "--out", "{tmp}/m.txt"], "does not end in .onnx"),
    "export --tolerance nan": ([*EXPORT, "--tolerance", "nan"], "argument --tolerance"),
    "export --weights missing": ([*EXPORT, "--weights", "{tmp}/absent.safetensors"], "does not exist"),
    # latency
    "predict --json folder": ([*PREDICT, "flops", "--json", "{folder}"], "argument --json"),
    "build --seconds-per-key 0": ([*BUILD, "--seconds-per-key", "0"], "argument --seconds-per-key"),
    "build --seconds-per-key -1": ([*BUILD, "--seconds-per-key", "-1"], "argument --seconds-per-key"),
    "build --seconds-per-key nan": ([*BUILD, "--seconds-per-key", "nan"], "nan is not a finite number > 0"),
    "build --resolution 0": ([*BUILD, "--resolution", "0"], "argument --resolution"),
    "build --out folder": ([*BUILD, "--out", "{folder}"], "is a folder"),
    "table unit furlongs": ([*PREDICT, "{furlongs}"], "unknown latency unit 'furlongs'"),
    "validate table with another --space": (["latency", "validate", "--hardware", "{table}", "--space",
                                             "proxyless-cifar", "--no-progress"], "another space"),
    "validate table with unknown override": (["latency", "validate", "--hardware", "{table}", "nosuch=1"],
                                             "unknown override(s) nosuch"),
    "measure --rounds 0": (["latency", "measure", "tiny", "--rounds", "0"], "argument --rounds"),
    # zoo and space
    "zoo show --resolution 0": ([*ZOO, "--resolution", "0"], "argument --resolution"),
    "zoo show --resolution -5": ([*ZOO, "--resolution", "-5"], "argument --resolution"),
    "zoo show --resolution 3": ([*ZOO, "--resolution", "3"], "give a resolution of at least 32"),
    "zoo show --num-classes 0": ([*ZOO, "--num-classes", "0"], "argument --num-classes"),
    "space show --resolution 0": (["space", "show", "tiny", "--resolution", "0"], "argument --resolution"),
}


@pytest.fixture
def inputs(tmp_path) -> dict[str, str]:
    """Files the cases name: a plain file, a folder, an arch, a checkpoint-shaped file, an empty
    recipe, a one-class image folder and two latency tables."""
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.yaml").write_text("# nothing but a comment\n")
    (tmp_path / "best.pt").write_bytes(b"never read: the options fail first")
    space = get_space("tiny")
    ops = [layer.candidates[0].token for layer in space.searched_layers]
    Arch.from_ops(space, ops).save(tmp_path / "a.json")
    (tmp_path / "one" / "cat").mkdir(parents=True)
    for i in range(12):
        Image.new("RGB", (8, 8), (20 * i, 0, 0)).save(tmp_path / "one" / "cat" / f"{i}.png")
    table = LatencyTable(TableTarget.of(space), {"device": "test"})
    table.save(tmp_path / "table.json")
    table.unit = "furlongs"
    table.save(tmp_path / "furlongs.json")
    return {"tmp": str(tmp_path), "file": str(tmp_path / "file.txt"), "folder": str(tmp_path / "folder"),
            "empty": str(tmp_path / "empty.yaml"), "checkpoint": str(tmp_path / "best.pt"),
            "arch": str(tmp_path / "a.json"), "one_class": str(tmp_path / "one"),
            "table": str(tmp_path / "table.json"), "furlongs": str(tmp_path / "furlongs.json")}


def files_in(folder) -> set:
    return {p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("argv, needle", CASES.values(), ids=CASES.keys())
def test_bad_argument_is_one_line_and_exit_2(tmp_path, inputs, capsys, argv, needle):
    before = files_in(tmp_path)
    code = main([item.format(**inputs) for item in argv])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert needle in lines[0]
    assert "Traceback" not in captured.err
    assert files_in(tmp_path) == before  # refused before any work


def test_validate_takes_a_table_with_its_own_space_restated(tmp_path, capsys):
    space = get_space("tiny", num_classes=5)
    LatencyTable(TableTarget.of(space), {"device": "test"}).save(tmp_path / "t.json")
    argv = ["latency", "validate", "--hardware", str(tmp_path / "t.json"), "--samples", "2", "--gauge", "0",
            "--no-progress"]
    assert main([*argv, "--space", "tiny", "--resolution", "16"]) == 2
    err = capsys.readouterr().err  # past the space check: a table without provenance cannot be validated
    assert err.startswith("error: ") and "another space" not in err and "cannot measure" in err
    assert main([*argv, "num_classes=4"]) == 2
    assert "another space" in capsys.readouterr().err


def test_console_entry_point_ends_in_one_line(inputs):
    command = [sys.executable, "-m", "proxylessnas", "eval", inputs["checkpoint"], "--batch-size", "0"]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")


@pytest.mark.parametrize("kind, good, bad", [
    (arguments.positive_int, [1, 7], [0, -1, 1.0, True, "3"]),
    (arguments.non_negative_int, [0, 5], [-1, 2.5]),
    (arguments.positive_float, [1e-9, 3], [0, -1.0, math.inf, math.nan]),
    (arguments.fraction, [0.5], [0, 1, math.nan]),
    (arguments.rate, [0, 0.999], [1, -0.1]),
    (arguments.resolution, [1, 4096], [0, 4097, -32]),
    (arguments.seed, [0, 2**32 - 1], [-1, 2**32]),
])
def test_number_kinds(kind, good, bad):
    assert all(kind.accepts(v) for v in good)
    assert not any(kind.accepts(v) for v in bad)
    with pytest.raises(ProxylessError, match="is not"):
        kind.check(bad[0], "here", "name")


def test_kinds_read_text_as_argparse_types():
    assert arguments.positive_int("3") == 3 and arguments.positive_float("2.5") == 2.5
    for kind, text in [(arguments.positive_int, "2.5"), (arguments.positive_int, "0"),
                       (arguments.positive_float, "inf"), (arguments.boolean, "maybe")]:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)
    assert arguments.boolean("off") is False


def test_path_kinds(tmp_path):
    file, folder = tmp_path / "f.txt", tmp_path / "d"
    file.write_text("x")
    folder.mkdir()
    assert arguments.existing_file.accepts(file) and not arguments.existing_file.accepts(folder)
    assert arguments.existing_folder.accepts(folder) and not arguments.existing_folder.accepts(file)
    assert not arguments.existing_file.accepts(tmp_path / "absent")
    assert arguments.new_file.accepts(file) and arguments.new_file.accepts(tmp_path / "new" / "x.json")
    assert not arguments.new_file.accepts(folder) and not arguments.new_file.accepts(file / "x.json")
    assert arguments.output_folder.accepts(folder) and arguments.output_folder.accepts(tmp_path / "a" / "b")
    assert not arguments.output_folder.accepts(file) and not arguments.output_folder.accepts(file / "sub")


def test_sizes_of_a_space_are_checked():
    with pytest.raises(ProxylessError, match="at least 8"):
        get_space("proxyless-cifar", resolution=4)  # stem stride 1, stage strides (1, 2, 2, 1, 2, 1)
    with pytest.raises(ProxylessError, match="num_classes=0"):
        get_space("tiny", num_classes=0)
    assert get_space("nasbench201", resolution=4).resolution == 4  # its total stride
