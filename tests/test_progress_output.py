"""Progress output fits where it goes: a bar on a terminal, plain periodic lines in a log, nothing
with ``--no-progress`` (issue 20)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from tqdm import tqdm

from proxylessnas.cli import build_parser, main
from proxylessnas.progress import LineProgress, NoProgress, progress_bar

PROGRESS_COMMANDS = [["search"], ["train", "arch.json"], ["eval", "best.pt"], ["latency", "build"],
                     ["latency", "validate", "--hardware", "cpu"],
                     ["latency", "predict", "a.json", "--hardware", "cpu"]]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_line_progress_prints_a_plain_line_per_interval_and_a_last_one():
    clock, stream = Clock(), io.StringIO()
    bar = LineProgress(10, 0, "latency torch-cpu", "block", interval=5, stream=stream, clock=clock)
    for _ in range(10):
        clock.now += 1
        bar.update(1)
        bar.set_postfix({"loss": 0.25}, refresh=False)
    bar.write("a message")  # to stdout, as tqdm.write
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "latency torch-cpu: 5/10 block (50%), 0:05 elapsed, about 0:05 left, loss=0.25",
        "latency torch-cpu: 10/10 block (100%), 0:10 elapsed, loss=0.25",
    ]


def test_line_progress_is_silent_for_a_short_run_and_counts_resumed_steps():
    clock, stream = Clock(), io.StringIO()
    bar = LineProgress(100, 40, "search", "step", interval=30, stream=stream, clock=clock)
    bar.update(5)
    bar.close()
    assert stream.getvalue() == ""  # nothing printed before the first interval: no closing line either
    clock.now += 60
    bar.update(10)  # 15 steps in 60 s since the resume: 45 left take 180 s
    assert stream.getvalue().splitlines() == ["search: 55/100 step (55%), 1:00 elapsed, about 3:00 left"]


def test_progress_bar_picks_a_bar_only_for_a_terminal(monkeypatch):
    bar = progress_bar(3, desc="x", stream=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()
    assert type(progress_bar(3, stream=io.StringIO())) is LineProgress
    assert type(progress_bar(3, enabled=False, stream=Terminal())) is NoProgress
    monkeypatch.setenv("PROXYLESS_PROGRESS_SECONDS", "2.5")
    assert progress_bar(3, stream=io.StringIO()).interval == 2.5
    monkeypatch.setenv("PROXYLESS_PROGRESS_SECONDS", "nan")
    assert progress_bar(3, stream=io.StringIO()).interval == 30.0


@pytest.mark.parametrize("argv", PROGRESS_COMMANDS, ids=[" ".join(a[:2]) for a in PROGRESS_COMMANDS])
def test_every_command_that_shows_progress_takes_no_progress(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "best.pt").write_bytes(b"")  # eval's argument must exist
    args, _ = build_parser().parse_known_args([*argv, "--no-progress"])
    assert args.no_progress is True


def test_a_log_written_to_a_file_has_no_carriage_returns(tmp_path):
    log = tmp_path / "build.log"
    env = {**os.environ, "PROXYLESS_PROGRESS_SECONDS": "0", "PROXYLESS_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "proxylessnas", "latency", "build", "--space", "tiny",
               "--seconds-per-key", "0.001", "--out", str(tmp_path / "t.json")]
    with log.open("wb") as handle:
        proc = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=300)
    text = log.read_bytes().decode()
    assert proc.returncode == 0, text
    assert "\r" not in text
    progress = [line for line in text.splitlines() if line.startswith("latency torch-cpu-t1: ")]
    assert progress and progress[-1].startswith("latency torch-cpu-t1: 12/12 block (100%)")


def test_no_progress_prints_no_progress_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PROXYLESS_PROGRESS_SECONDS", "0")
    argv = ["latency", "build", "--space", "tiny", "--seconds-per-key", "0.001"]
    assert main([*argv, "--out", str(tmp_path / "a.json"), "--no-progress"]) == 0
    assert "block (" not in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "b.json")]) == 0
    assert "latency torch-cpu-t1: 12/12 block (100%)" in capsys.readouterr().err


def test_a_search_log_written_to_a_file_has_no_carriage_returns(tmp_path):
    log = tmp_path / "search.log"
    env = {**os.environ, "PROXYLESS_PROGRESS_SECONDS": "0", "PROXYLESS_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "proxylessnas", "search", "--space", "tiny", "--hardware", "flops",
               "--dataset", "synthetic:128?resolution=16", "--epochs", "1", "--warmup-epochs", "1",
               "--out", str(tmp_path / "run"), "search.steps_per_epoch=2", "data.batch_size=8",
               "data.valid_batch_size=8", "run.eval_batches=1", "run.bn_recalibration_batches=1",
               "run.plots=false", "run.threads=1"]
    with log.open("wb") as handle:
        proc = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=300)
    text = log.read_bytes().decode()
    assert proc.returncode == 0, text
    assert "\r" not in text
    assert any(line.startswith("search epoch 2/2: 4/4 step (100%)") for line in text.splitlines()), text
