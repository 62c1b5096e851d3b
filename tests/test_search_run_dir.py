"""search/run_dir.py: reading a search run folder's summary."""

from __future__ import annotations

import json

from proxylessnas.runtime.checkpoint import save_checkpoint
from proxylessnas.search.run_dir import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, finished_summary


def checkpoint(folder, finished: bool, **extra) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "checkpoint.pt", {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                                               "finished": finished, **extra})


def test_finished_summary_reads_summary_json_first(tmp_path):
    checkpoint(tmp_path, True, summary={"from": "checkpoint"})
    (tmp_path / "summary.json").write_text(json.dumps({"from": "summary.json"}))
    assert finished_summary(tmp_path) == {"from": "summary.json"}


def test_finished_summary_falls_back_to_the_finished_checkpoint(tmp_path):
    checkpoint(tmp_path, True, summary={"from": "checkpoint"})
    assert finished_summary(tmp_path) == {"from": "checkpoint"}  # killed before summary.json
    (tmp_path / "summary.json").write_text('{"from": "summ')  # cut off
    assert finished_summary(tmp_path) == {"from": "checkpoint"}


def test_an_unfinished_or_empty_run_has_no_summary(tmp_path):
    assert finished_summary(tmp_path / "absent") is None
    assert finished_summary(tmp_path) is None
    checkpoint(tmp_path, False, summary={"from": "checkpoint"})
    assert finished_summary(tmp_path) is None
    save_checkpoint(tmp_path / "checkpoint.pt", {"finished": True, "summary": {"not": "a search"}})
    assert finished_summary(tmp_path) is None
