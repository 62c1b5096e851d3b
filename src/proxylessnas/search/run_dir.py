"""The run folder of a search (``run.out``), one object: what is in it, and every write to it.

    config.yaml            the settings (rewritten once a checkpoint holds changed ones)
    metrics.jsonl          one row per finished epoch (:mod:`proxylessnas.runtime.metrics`)
    arch.json              the argmax architecture after the last epoch; the derived one at the end
    arches/epoch_NNN.json  the argmax architecture after epoch NNN (counted from 1)
    checkpoint.pt          everything a resume needs (written atomically)
    summary.json           the final report (:func:`finished_summary` reads it, or the checkpoint's)
    plots/                 :mod:`proxylessnas.search.plots`

Only rank 0 writes: each write of the loop goes through ``context.on_main`` (its result and its
errors reach every rank); the final phase runs on rank 0 alone and writes directly. Rank 0
locks the folder (:meth:`RunDir.lock`) before anything in it is read or written.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from proxylessnas.runtime.atomic import write_json_atomic
from proxylessnas.runtime.checkpoint import load_checkpoint, save_checkpoint
from proxylessnas.runtime.distributed import DistributedContext
from proxylessnas.runtime.metrics import keep_metrics, write_metrics
from proxylessnas.runtime.resumable import ResumableRun
from proxylessnas.runtime.resume_changes import accept_changes
from proxylessnas.runtime.runfolder_lock import hold_run_folder
from proxylessnas.search.config import RESUMABLE_FIELDS, SearchConfig, load_config
from proxylessnas.search.cost_profile import CostProfile
from proxylessnas.space import Arch
from proxylessnas.supernet import DecisionSuperNet

CHECKPOINT_FORMAT = "proxylessnas-search"
CHECKPOINT_VERSION = 1
SEARCH_RUN = ResumableRun("checkpoint.pt", {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION},
                          "search", "search", results="its arch.json and summary.json")
RUN_SUBFOLDERS = ("arches", "plots")  # of the run folder, swept for stale temporary files with it


class RunDir:
    """The folder ``path`` of a search, written by rank 0 of ``context``; ``rows`` are the
    metrics rows of the finished epochs (on every rank)."""

    def __init__(self, path: str | Path, context: DistributedContext) -> None:
        self.path = Path(path)
        self.context = context
        self.checkpoint = SEARCH_RUN.checkpoint(self.path)
        self.metrics = self.path / "metrics.jsonl"
        self.rows: list[dict[str, Any]] = []

    @staticmethod
    def lock(path: str | Path) -> Callable[[], AbstractContextManager[Any]]:
        """The folder's lock (:func:`~proxylessnas.runtime.runfolder_lock.hold_run_folder`), to enter
        on rank 0: a second search on the folder is refused; stale temporary files are removed."""
        return functools.partial(hold_run_folder, path, "search run folder", RUN_SUBFOLDERS)

    def prepare(self, config: SearchConfig, resume: bool) -> None:
        """Refuse to overwrite a run, or to resume one with settings that change its shape (early,
        against config.yaml; the checkpoint's own config is checked again when it is loaded)."""
        self.context.on_main(_prepare, self.path, config, resume)

    def start(self, config: SearchConfig) -> None:
        """A new run: the folder, config.yaml and an empty metrics.jsonl."""
        self.context.on_main(_start, self.path, config)
        self.rows = []

    def resume(self, config: SearchConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        """The checkpoint's state and the settings ``config`` changes (only resumable ones)."""
        where = str(self.checkpoint)
        state = self.context.on_main(SEARCH_RUN.load, self.path)
        saved = SearchConfig.from_dict(state.get("config"), where)
        changes = accept_changes(saved.resume_settings(), config.resume_settings(), RESUMABLE_FIELDS, where)
        return state, changes

    def keep_rows(self, epoch: int) -> None:
        """metrics.jsonl cut back to the ``epoch`` epochs the resumed checkpoint has finished."""
        self.rows = self.context.on_main(keep_metrics, self.metrics, epoch)

    def append_row(self, row: dict[str, Any]) -> None:
        """One more finished epoch in ``rows`` and in metrics.jsonl (rewritten atomically)."""
        self.rows.append(row)
        self.context.on_main(write_metrics, self.metrics, self.rows)

    def write_epoch_arch(self, supernet: DecisionSuperNet, profile: CostProfile, epoch: int) -> None:
        """arch.json (latest) and arches/epoch_NNN.json: the argmax architecture after the 0-based
        ``epoch``, numbered NNN = epoch + 1 like the log and metrics.jsonl."""
        self.context.on_main(_write_epoch_arch, self.path, supernet, profile, epoch)

    def save_checkpoint(self, state: dict[str, Any], config: SearchConfig | None = None) -> None:
        """checkpoint.pt (format and version first); with ``config``, config.yaml too (read by a
        resume: the new settings once a checkpoint holds them, not before)."""
        if config is not None:
            self.context.on_main(config.save, self.path / "config.yaml")
        self.context.on_main(save_checkpoint, self.checkpoint, SEARCH_RUN.stamped(state))

    def save_final_checkpoint(self, state: dict[str, Any]) -> None:
        """Final phase, rank 0 alone: the finished checkpoint."""
        save_checkpoint(self.checkpoint, SEARCH_RUN.stamped(state))

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Final phase, rank 0 alone: summary.json, with the list of the folder's files."""
        summary["files"] = sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*")
                                  if p.is_file() and not p.name.startswith("."))
        write_json_atomic(self.path / "summary.json", summary)


def finished_summary(path: str | Path) -> dict[str, Any] | None:
    """The summary of the finished search in the run folder ``path``: summary.json, or (the run
    killed between its finished checkpoint and summary.json, or summary.json cut off) the summary
    the finished checkpoint holds; None while the search is unfinished or the folder holds none.
    A corrupt checkpoint is a :class:`ProxylessError` (:func:`load_checkpoint`)."""
    path = Path(path)
    summary_file = path / "summary.json"
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            summary = None  # cut off: the finished checkpoint has it
        if isinstance(summary, dict):
            return summary
    checkpoint = path / "checkpoint.pt"
    if not checkpoint.is_file():
        return None
    state = load_checkpoint(checkpoint)
    if state.get("format") != CHECKPOINT_FORMAT or not state.get("finished"):
        return None
    summary = state.get("summary")
    return summary if isinstance(summary, dict) else None


def _prepare(run_dir: Path, config: SearchConfig, resume: bool) -> None:
    SEARCH_RUN.prepare(run_dir, resume)
    if not resume:
        return
    saved_path = run_dir / "config.yaml"
    if saved_path.is_file():
        accept_changes(load_config(saved_path).resume_settings(), config.resume_settings(), RESUMABLE_FIELDS,
                       str(saved_path))


def _start(run_dir: Path, config: SearchConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")
    write_metrics(run_dir / "metrics.jsonl", [])


def _write_epoch_arch(run_dir: Path, supernet: DecisionSuperNet, profile: CostProfile, epoch: int) -> None:
    arch = supernet.export()
    cost = profile.cost_of(arch.indices(supernet.space))
    arch = Arch(arch.space, arch.choices, arch.space_overrides,
                {**arch.metadata, "epoch": epoch + 1, "predicted_latency": cost, "unit": profile.unit})
    arch.save(run_dir / "arches" / f"epoch_{epoch + 1:03d}.json")
    arch.save(run_dir / "arch.json")
