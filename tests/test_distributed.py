"""Distributed search (2 gloo processes on CPU, tiny space, synthetic data) and the DDP helpers.

Each multi-process test starts two plain Python processes with torchrun's environment variables
(or the CLI's ``--nproc 2``, which runs torch.distributed.run) and a short timeout, and kills
them if they outlive it: a failure never hangs the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from proxylessnas.data import BatchIterator, synthetic_dataset
from proxylessnas.data.iterator import ShardedBatchIterator, rescale_step
from proxylessnas.runtime.checkpoint import load_checkpoint
from proxylessnas.runtime.distributed import (
    SINGLE_PROCESS,
    DistributedContext,
    launch_command,
    strip_launch_arguments,
    tensor_hash,
)
from proxylessnas.search.config import SearchConfig
from proxylessnas.search.run import run_search

PROCESS_TIMEOUT = 120  # seconds for one two-process run; a run takes a few seconds
QUICK = ["data.dataset=synthetic:200", "data.valid_size=0.2", "space.name=tiny", "search.warmup_epochs=1",
         "search.epochs=2", "search.steps_per_epoch=4", "data.batch_size=16", "data.valid_batch_size=8",
         "data.eval_batch_size=64", "arch.update_every=1", "arch.skip_first_epoch=false",
         "hardware.target=flops", "run.progress=false", "run.plots=false", "run.threads=1",
         "run.eval_batches=1", "run.bn_recalibration_batches=2", "run.distributed_timeout=30"]

WORKER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from proxylessnas.errors import ProxylessError
    from proxylessnas.search.config import SearchConfig
    from proxylessnas.search.run import run_search

    job = json.loads(sys.argv[1])
    rank = int(os.environ["RANK"])

    def on_step(epoch, step):
        if job.get("crash_rank") == rank and [epoch, step] == job["crash_at"]:
            os._exit(3)  # a hard crash: no exception, no goodbye to the other rank

    config = SearchConfig().with_overrides(job["overrides"])
    try:
        result = run_search(config, resume=job["resume"], stop_after_epoch=job.get("stop_after_epoch"),
                            on_step=on_step)
    except ProxylessError as err:
        print(err.line(), file=sys.stderr)
        sys.exit(2)
    # what this rank holds after the run, written beside (never inside) the run folder
    report = {"arch": result.arch.to_dict()["choices"], "finished": result.finished,
              "summary_arch": result.summary.get("choices")}
    Path(job["report"]).write_text(json.dumps(report))
""")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_two_ranks(tmp_path: Path, overrides: list[str], *, resume: bool = False,
                  stop_after_epoch: int | None = None, crash_rank: int | None = None,
                  crash_at: tuple[int, int] = (0, 1)) -> list[tuple[int, str, dict | None]]:
    """Two ranks of WORKER; per rank (exit code, stderr, report)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    processes, reports = [], []
    for rank in range(2):
        report = tmp_path / f"report-{rank}-{port}.json"
        job = {"overrides": overrides, "resume": resume, "stop_after_epoch": stop_after_epoch,
               "crash_rank": crash_rank, "crash_at": list(crash_at), "report": str(report)}
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen([sys.executable, str(script), json.dumps(job)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        reports.append(report)
    results = []
    try:
        for process, report in zip(processes, reports):
            _, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
            data = json.loads(report.read_text()) if report.exists() else None
            results.append((process.returncode, stderr, data))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return results


def alphas_of(checkpoint: Path) -> list[torch.Tensor]:
    state = load_checkpoint(checkpoint)["supernet"]
    return [state[k] for k in sorted(state) if k.endswith(".alpha")]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, list]:
    """One uninterrupted two-rank search (shared by the tests below)."""
    tmp = tmp_path_factory.mktemp("ddp-full")
    out = tmp / "run"
    results = run_two_ranks(tmp, [*QUICK, f"run.out={out}"])
    for code, stderr, _ in results:
        assert code == 0, stderr[-2000:]
    return out, results


def test_two_ranks_hold_identical_alphas_and_export_the_same_arch(full_run):
    out, results = full_run
    (_, _, rank0), (_, _, rank1) = results
    assert rank0["finished"] and rank1["finished"]
    assert rank0["arch"] == rank1["arch"]  # each rank's own supernet.export() / selection
    assert rank0["summary_arch"] == rank1["summary_arch"] == rank0["arch"]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == 2 and state["finished"]
    # the alphas moved (so "identical" is not "untouched") ...
    init = torch.Generator().manual_seed(0)
    moved = [float((a - torch.randn(a.shape, generator=init) * 1e-3).abs().max()) for a in alphas_of(
        out / "checkpoint.pt")]
    assert max(moved) > 1e-3
    # ... and rank 0 alone wrote the files: one metrics row per epoch, not one per rank
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert json.loads((out / "arch.json").read_text())["choices"] == rank0["arch"]


def test_resume_under_ddp_same_and_other_world_size(full_run, tmp_path):
    full_out, _ = full_run
    out = tmp_path / "run"
    # two ranks stop after the warm-up epoch and the first search epoch
    results = run_two_ranks(tmp_path, [*QUICK, f"run.out={out}"], stop_after_epoch=1)
    assert all(code == 0 for code, _, _ in results), results[0][1][-2000:] + results[1][1][-2000:]
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    other = tmp_path / "run-one-process"
    shutil.copytree(out, other)
    # the same world size, through the CLI's launcher (torch.distributed.run, 2 processes): exact
    command = [sys.executable, "-m", "proxylessnas", "search", "--out", str(out), "--resume", "--nproc", "2",
               "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("chosen architecture:") == 1  # only rank 0 prints the summary
    resumed, uninterrupted = alphas_of(out / "checkpoint.pt"), alphas_of(full_out / "checkpoint.pt")
    assert all(torch.equal(a, b) for a, b in zip(resumed, uninterrupted))
    # another world size (1 process): continues at the same epoch with its own shards
    config = SearchConfig().with_overrides([*QUICK, f"run.out={other}"])
    result = run_search(config, resume=True)
    assert result.finished
    assert load_checkpoint(other / "checkpoint.pt")["world_size"] == 1
    rows = [json.loads(line) for line in (other / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]


def test_a_crashed_rank_ends_the_job_with_a_clear_message(tmp_path):
    out = tmp_path / "run"
    results = run_two_ranks(tmp_path, [*QUICK, f"run.out={out}", "run.distributed_timeout=20"],
                            crash_rank=1, crash_at=(0, 1))
    (code0, stderr0, report0), (code1, _, _) = results
    assert code1 == 3
    assert code0 == 2 and report0 is None
    last = stderr0.strip().splitlines()[-1]
    assert last.startswith("error: rank 0 lost contact with the other ranks"), stderr0[-2000:]
    assert "Traceback" not in stderr0


# -- single-process helpers -------------------------------------------------------------------------

def test_shards_interleave_the_single_process_permutation():
    dataset = synthetic_dataset(103, num_classes=4, resolution=8, seed=0)
    whole = BatchIterator.for_dataset(dataset, dataset.train, 5, augment=True, seed=7, drop_last=True)
    shards = [ShardedBatchIterator.of(whole, rank, 3) for rank in range(3)]
    assert [len(s) for s in shards] == [103 // 3 // 5] * 3
    # step s of rank r = positions (s*B + i)*W + r of the whole set's epoch plan (images + augmentation)
    plan = whole._plan(2)
    big = BatchIterator.for_dataset(dataset, dataset.train, 15, augment=True, seed=7, drop_last=True)
    big_batches = list(big.epoch(2))
    for rank, shard in enumerate(shards):
        for step, (images, labels) in enumerate(shard.epoch(2)):
            positions = (torch.arange(5) + step * 5) * 3 + rank
            assert torch.equal(labels, dataset.train.labels[plan["order"][positions]])
            assert torch.equal(images, big_batches[step][0][rank::3])  # same crops and flips
    seen = torch.cat([labels for s in shards for _, labels in s.epoch(2)])
    assert len(seen) == 3 * 6 * 5


def test_a_shard_resumes_its_position_with_another_world_size():
    dataset = synthetic_dataset(64, num_classes=4, resolution=8, seed=0)
    whole = BatchIterator.for_dataset(dataset, dataset.train, 4, augment=False, seed=1, drop_last=True)
    two = ShardedBatchIterator.of(whole, 0, 2)
    stream = two.cycle()
    for _ in range(3):
        next(stream)
    state = two.state_dict()
    assert state["world_size"] == 2 and state["step"] == 3
    one = ShardedBatchIterator.of(whole, 0, 1)
    one.load_state_dict(state)
    assert one._position == (0, 6)  # 3 steps of 2 ranks = 6 steps of 1
    assert rescale_step(5, 2, 4) == 2 and rescale_step(3, 1, 2) == 1 and rescale_step(4, 4, 4) == 4


def test_single_process_context_is_the_identity():
    module = torch.nn.Linear(3, 2)
    assert SINGLE_PROCESS.wrap(module) is module
    assert SINGLE_PROCESS.on_main(lambda x: x + 1, 1) == 2
    assert SINGLE_PROCESS.average_numbers({"a": 3.0}) == {"a": 3.0}
    assert SINGLE_PROCESS.stop_signal(None) is None
    batches = BatchIterator(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4), 2, augment=False,
                            mean=[0.0], std=[1.0])
    assert SINGLE_PROCESS.shard(batches) is batches
    assert not DistributedContext().enabled


def test_tensor_hash_sees_one_ulp():
    a = torch.tensor([1.0, 2.0])
    b = torch.nextafter(a, torch.tensor([2.0, 3.0]))
    assert tensor_hash([a]) == tensor_hash([a.clone()])
    assert tensor_hash([a]) != tensor_hash([b])
    assert tensor_hash([a.view(1, 2)]) != tensor_hash([a])


def test_launcher_command_drops_nproc():
    argv = ["search", "--nproc", "4", "--out", "x", "--nproc=2", "a=1"]
    assert strip_launch_arguments(argv) == ["search", "--out", "x", "a=1"]
    command = launch_command(4, argv)
    assert command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m"]
    assert command[6:] == ["proxylessnas", "search", "--out", "x", "a=1"]


def test_nproc_reruns_the_command_line_given_to_main(tmp_path, monkeypatch):
    """``main([...])`` from Python reruns its own arguments, not the host program's sys.argv."""
    from proxylessnas.cli import main

    launched = []
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest", "-k", "something"])
    monkeypatch.setattr(subprocess, "call", lambda command, env=None: launched.append(command) or 0)
    assert main(["search", "--nproc", "2", "--out", str(tmp_path / "run"), "search.epochs=1"]) == 0
    assert launched and launched[0][-5:] == ["proxylessnas", "search", "--out", str(tmp_path / "run"),
                                             "search.epochs=1"]


def test_search_without_torchrun_is_one_process(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    config = SearchConfig().with_overrides([*QUICK, f"run.out={tmp_path / 'run'}", "search.epochs=1",
                                            "search.warmup_epochs=0"])
    result = run_search(config)
    assert result.finished
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["world_size"] == 1


def test_train_with_two_processes_then_resume_with_one(tmp_path):
    from proxylessnas.cli import main
    from proxylessnas.space import Arch, get_space

    space = get_space("tiny")
    Arch.from_ops(space, [layer.candidates[1].token for layer in space.searched_layers]).save(
        tmp_path / "arch.json")
    out = tmp_path / "run"
    common = ["train", str(tmp_path / "arch.json"), "warmup_epochs=0.5", "eval_batch_size=32",
              "--dataset", "synthetic:96?resolution=16&seed=1", "--epochs", "2", "--batch-size", "8",
              "--out", str(out), "--no-progress", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "proxylessnas", *common, "--nproc", "2", "--max-steps", "3"],
                         env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("M params") == 1  # rank 0 alone reports
    cut = load_checkpoint(out / "last.pt")
    # 96 images -> 48 per rank -> 6 steps of 8 per epoch; stopped at step 3 = 6 steps of one process
    assert (cut["world_size"], cut["epoch"], cut["step"]) == (2, 0, 3)
    assert main([*common, "--resume"]) == 0
    done = load_checkpoint(out / "last.pt")
    assert (done["world_size"], done["epoch"], done["step"]) == (1, 2, 0)
    assert done["global_step"] == 2 * 12  # 12 steps per epoch with one process
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
