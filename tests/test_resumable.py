"""The resume skeleton shared by search and training (runtime/resumable.py)."""

from __future__ import annotations

import pytest

from proxylessnas.cli import main
from proxylessnas.errors import ProxylessError
from proxylessnas.runtime import resumable
from proxylessnas.runtime.checkpoint import load_checkpoint, save_checkpoint
from proxylessnas.runtime.resumable import ResumableRun
from proxylessnas.search.run_dir import SEARCH_RUN
from proxylessnas.train.run import TRAIN_RUN
from test_train_stop_resume import arch_file, train_args  # noqa: F401, F811 (a fixture)

RUN = ResumableRun("state.pt", {"kind": "demo", "version": 2}, "demo", "demo run", required=("epoch",))


def test_a_fresh_run_refuses_a_folder_holding_an_earlier_run(tmp_path):
    RUN.prepare(tmp_path, resume=False)  # empty: fine
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ProxylessError, match="already holds an earlier run"):
        RUN.prepare(tmp_path, resume=False)


def test_a_resume_needs_the_checkpoint(tmp_path):
    with pytest.raises(ProxylessError, match="nothing to resume: no state.pt"):
        RUN.prepare(tmp_path, resume=True)
    with pytest.raises(ProxylessError, match="nothing to resume"):
        RUN.load(tmp_path)


def test_load_checks_the_stamp_the_required_keys_and_finished_runs(tmp_path):
    path = tmp_path / "state.pt"
    save_checkpoint(path, RUN.stamped({"epoch": 3}))
    assert RUN.load(tmp_path)["epoch"] == 3
    assert list(RUN.stamped({"epoch": 1})) == ["kind", "version", "epoch"]
    for wrong in ({"kind": "demo", "version": 1, "epoch": 3}, {"kind": "other", "version": 2, "epoch": 3},
                  RUN.stamped({})):
        save_checkpoint(path, wrong)
        with pytest.raises(ProxylessError, match="not a demo run checkpoint of this version"):
            RUN.load(tmp_path)
    save_checkpoint(path, RUN.stamped({"epoch": 3, "finished": True}))
    with pytest.raises(ProxylessError, match="has already finished"):
        RUN.load(tmp_path)


def test_search_and_training_checkpoints_are_told_apart(tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pt", TRAIN_RUN.stamped({"run": {}, "net_config": {}}))
    with pytest.raises(ProxylessError, match="not a search checkpoint"):
        SEARCH_RUN.load(tmp_path)
    save_checkpoint(tmp_path / "last.pt", SEARCH_RUN.stamped({"run": {}, "net_config": {}}))
    with pytest.raises(ProxylessError, match="not a training checkpoint"):
        TRAIN_RUN.load(tmp_path)


def test_a_training_resume_reads_last_pt_once(tmp_path, arch_file, monkeypatch):  # noqa: F811
    """The command reads last.pt (to rebuild the net and recipe) and hands it to train_model,
    which does not read it again."""
    out = tmp_path / "run"
    assert main(train_args(arch_file, out, "--max-steps", "2")) == 0
    reads = []

    def counting(path, *args, **kwargs):
        reads.append(path)
        return load_checkpoint(path, *args, **kwargs)

    monkeypatch.setattr(resumable, "load_checkpoint", counting)
    assert main(["train", "--resume", "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    assert reads == [out / "last.pt"]
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
