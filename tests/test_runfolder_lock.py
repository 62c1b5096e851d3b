"""One writer per run folder: the flock, its refusal message, its release when the holder dies, the
removal of stale temporary files, and the lock in search, train, export and latency build."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxylessnas import Arch, ProxylessError, get_space
from proxylessnas.cli import main
from proxylessnas.data import synthetic_dataset
from proxylessnas.export import export_model
from proxylessnas.hardware.build import build_lut
from proxylessnas.hardware.measure import Backend
from proxylessnas.nets.config import net_config
from proxylessnas.nets.net import ProxylessNet
from proxylessnas.runtime.checkpoint import load_checkpoint
from proxylessnas.runtime.runfolder_lock import hold_output_file, hold_run_folder, remove_stale_temp_files
from proxylessnas.search.config import SearchConfig
from proxylessnas.search.run import run_search

TIMEOUT = 120  # seconds any helper process may live; a failure never hangs the suite
QUICK = ["data.dataset=synthetic:200", "space.name=tiny", "search.warmup_epochs=1", "search.epochs=1",
         "search.steps_per_epoch=3", "data.batch_size=16", "data.valid_batch_size=16",
         "data.eval_batch_size=64", "arch.update_every=1", "arch.skip_first_epoch=false",
         "hardware.target=flops", "run.progress=false", "run.plots=false", "run.threads=1",
         "run.eval_batches=1", "run.bn_recalibration_batches=2"]

# holds a lock until its stdin closes (or it is killed)
HOLDER = textwrap.dedent("""
    import sys
    from proxylessnas.runtime.runfolder_lock import hold_output_file, hold_run_folder
    kind, path = sys.argv[1], sys.argv[2]
    with (hold_run_folder if kind == "folder" else hold_output_file)(path):
        print("held", flush=True)
        sys.stdin.read()
""")

# a search that says so after its first weight step, then waits there until the gate file appears
GATED_SEARCH = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from proxylessnas.search.config import load_config
    from proxylessnas.search.run import run_search
    gate = Path(sys.argv[1])
    config = load_config(sys.argv[2], sys.argv[3:])

    def wait(epoch, step):
        if (epoch, step) == (0, 0):
            print("running", flush=True)
        deadline = time.monotonic() + 60
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    run_search(config, on_step=wait)
    print("finished", flush=True)
""")


@contextlib.contextmanager
def held_by_other_process(kind: str, path: Path) -> Iterator[subprocess.Popen]:
    """A second process holding the lock of ``path`` ("folder" or "file") for the block."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.close()
            process.wait(timeout=TIMEOUT)


def in_use_by(process: subprocess.Popen) -> str:
    return f"in use by PID {process.pid} on host {socket.gethostname()}"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


# the lock ----------------------------------------------------------------------------------------
def test_second_process_is_refused_naming_the_holder_and_the_kernel_frees_a_killed_holder(tmp_path):
    folder = tmp_path / "run"
    with held_by_other_process("folder", folder) as holder:
        record = json.loads((folder / ".lock").read_text())
        assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
        with pytest.raises(ProxylessError) as caught:
            with hold_run_folder(folder):
                pass
        assert in_use_by(holder) in caught.value.line() and str(folder) in caught.value.line()
        holder.send_signal(signal.SIGKILL)  # no cleanup: the lock file stays, the kernel drops the lock
        holder.wait(timeout=TIMEOUT)
    assert (folder / ".lock").exists()
    with hold_run_folder(folder):
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
    assert not (folder / ".lock").exists()


def test_a_process_may_nest_its_own_lock_and_the_outermost_block_releases_it(tmp_path):
    folder = tmp_path / "run"
    with hold_run_folder(folder):
        with hold_run_folder(folder):
            assert (folder / ".lock").exists()
        assert (folder / ".lock").exists()  # still held by the outer block
        (folder / "result.txt").write_text("kept")
    assert not (folder / ".lock").exists() and (folder / "result.txt").read_text() == "kept"


def test_a_folder_created_by_a_failed_run_is_removed_when_empty(tmp_path):
    folder = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError), hold_run_folder(folder):
        raise RuntimeError("the run failed before writing anything")
    assert not (tmp_path / "new").exists()
    with pytest.raises(RuntimeError), hold_output_file(tmp_path / "tables" / "lut.json"):
        raise RuntimeError("failed")
    assert not (tmp_path / "tables").exists()


def test_a_file_as_folder_and_a_folder_as_file_are_one_line_errors(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ProxylessError, match="is a file, not a folder"):
        with hold_run_folder(tmp_path / "file.txt"):
            pass
    with pytest.raises(ProxylessError, match="is a folder, not a file"):
        with hold_output_file(tmp_path):
            pass
    assert (tmp_path / "file.txt").read_text() == "x"


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    stale = [".checkpoint.pt.k2j3h4g5.tmp", ".metrics.jsonl.tmp", ".arch.json.ab_cd123",
             ".net.onnx.zz9y8x7w.onnx", ".net.torchscript.pt.a1b2c3d4.pt", "arches/.epoch_001.json.qwertyui"]
    kept = ["checkpoint.pt", ".gitignore", "notes.txt", ".env.local", ".lut.json.lock",
            "arches/epoch_001.json", "other/.x.json.abcdefgh"]  # other/: not a subfolder of the run
    for name in stale + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    removed = remove_stale_temp_files(tmp_path, subfolders=["arches"])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == sorted(stale)
    assert all((tmp_path / name).exists() for name in kept)
    # beside one output file only that file's temporary files go
    (tmp_path / ".lut.json.abcdefgh").write_text("")
    (tmp_path / ".other.json.abcdefgh").write_text("")
    with hold_output_file(tmp_path / "lut.json"):
        pass
    assert not (tmp_path / ".lut.json.abcdefgh").exists() and (tmp_path / ".other.json.abcdefgh").exists()


# the runs -----------------------------------------------------------------------------------------
def test_two_concurrent_searches_on_one_folder_the_second_refused_the_first_unharmed(tmp_path, capsys):
    out, gate, recipe = tmp_path / "run", tmp_path / "gate", tmp_path / "quick.yaml"
    SearchConfig().with_overrides(QUICK).save(recipe)
    first = subprocess.Popen([sys.executable, "-c", GATED_SEARCH, str(gate), str(recipe), "run.seed=7",
                              f"run.out={out}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first search runs (inside its first step, waiting for the gate): it holds the folder
        assert first.stdout.readline().strip() == "running", first.communicate(timeout=TIMEOUT)
        # another search, started while the first runs (without the lock it would run and exit 0)
        assert main(["search", "--config", str(recipe), "run.seed=3", "--out", str(out)]) == 2
        assert in_use_by(first) in one_error_line(capsys)
        # --resume of the live run, with its own config.yaml
        assert main(["search", "--out", str(out), "--resume"]) == 2
        assert in_use_by(first) in one_error_line(capsys)
        gate.touch()
        stdout, stderr = first.communicate(timeout=TIMEOUT)
    finally:
        gate.touch()
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert "finished" in stdout
    assert "seed: 7" in (out / "config.yaml").read_text()
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["finished"] and state["config"]["run"]["seed"] == 7
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and not (out / ".lock").exists()


def test_train_export_and_latency_build_are_refused_while_another_process_writes(tmp_path, capsys):
    space = get_space("tiny")
    arch = Arch.from_ops(space, [layer.candidates[1].token for layer in space.searched_layers])
    arch.save(tmp_path / "a.json")
    out = tmp_path / "train"
    with held_by_other_process("folder", out) as holder:
        assert main(["train", str(tmp_path / "a.json"), "--dataset", "synthetic:64?resolution=16",
                     "--epochs", "1", "--batch-size", "16", "--out", str(out), "--no-progress"]) == 2
        assert in_use_by(holder) in one_error_line(capsys)
    assert not out.exists()  # train wrote nothing: the holder's empty folder went with its lock
    net = ProxylessNet(net_config(space, arch))
    with held_by_other_process("file", tmp_path / "net.onnx") as holder:
        with pytest.raises(ProxylessError, match=re.escape(in_use_by(holder))):
            export_model(net.eval(), tmp_path / "net.onnx", "torchscript", in_chs=3, resolution=16)
    assert not (tmp_path / "net.onnx").exists()
    with held_by_other_process("file", tmp_path / "lut.json") as holder:
        with pytest.raises(ProxylessError, match=re.escape(in_use_by(holder))):
            build_lut(space, Backend(), tmp_path / "lut.json", progress=False)
    assert not (tmp_path / "lut.json").exists()


def test_stale_temporary_files_are_removed_when_a_search_resumes(tmp_path):
    dataset = synthetic_dataset(200, num_classes=4, resolution=16, seed=0)
    config = SearchConfig().with_overrides([*QUICK, f"run.out={tmp_path / 'r'}"])
    run_search(config, dataset=dataset, stop_after_epoch=0)
    run_dir = tmp_path / "r"
    litter = [run_dir / ".checkpoint.pt.k2j3h4g5.tmp", run_dir / ".metrics.jsonl.tmp",
              run_dir / "arches" / ".epoch_001.json.abcdefgh"]
    for path in litter:
        path.write_bytes(b"")  # what a kill during an atomic write leaves
    (run_dir / "notes.txt").write_text("mine")
    result = run_search(config, dataset=dataset, resume=True)
    assert result.finished
    assert [p for p in litter if p.exists()] == []
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_the_default_run_folder_skips_folders_of_earlier_runs_and_held_ones(tmp_path):
    """`proxyless search` without --out moves on from a folder that a fresh run would refuse."""
    from proxylessnas.search.commands import fresh_run_dir

    base = tmp_path / "demo"
    assert fresh_run_dir(base) == base
    base.mkdir()
    (base / "metrics.jsonl").write_text("")  # an earlier run without a checkpoint yet
    second = tmp_path / "demo-2"
    assert fresh_run_dir(base) == second
    second.mkdir()
    (second / ".lock").write_text("")  # a run that holds it now
    assert fresh_run_dir(base) == tmp_path / "demo-3"
