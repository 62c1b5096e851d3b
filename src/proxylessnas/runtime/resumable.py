"""The resume skeleton of a run folder, one for search and training.

A run folder holds one checkpoint that a resume reads (``checkpoint.pt`` of a search, ``last.pt``
of a training). :class:`ResumableRun` says which file that is and how it is stamped, and does
the three things both commands need before their loops start:

- :meth:`~ResumableRun.prepare`: a fresh run refuses a folder holding an earlier run's files; a
  resume refuses a folder without the checkpoint (one line each, before any work);
- :meth:`~ResumableRun.load`: the checkpoint, refused when it is another kind or version, or
  when the run it holds has already finished;
- :meth:`~ResumableRun.stamped`: the stamp put on every checkpoint written.

Which settings may change on a resume, and how the changes are recorded, is
:mod:`proxylessnas.runtime.resume_changes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.checkpoint import load_checkpoint
from proxylessnas.runtime.runfolder_lock import refuse_earlier_run


@dataclass(frozen=True)
class ResumableRun:
    """The resume checkpoint ``file`` of the runs of ``command`` (``proxyless search`` / ``train``,
    a ``what`` in messages), stamped with the keys and values of ``stamp``; ``required`` names
    the further keys a checkpoint must hold, ``results`` what a finished run leaves to read."""

    file: str
    stamp: dict[str, Any]
    command: str
    what: str
    required: tuple[str, ...] = field(default=())
    results: str = "its results"

    def checkpoint(self, folder: str | Path) -> Path:
        return Path(folder) / self.file

    def stamped(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` with the stamp first."""
        return {**self.stamp, **state}

    def prepare(self, folder: str | Path, resume: bool) -> None:
        """A fresh run: refuse a folder holding an earlier run. A resume: refuse a folder without
        the checkpoint."""
        if not resume:
            refuse_earlier_run(Path(folder), self.what)
        elif not self.checkpoint(folder).is_file():
            raise ProxylessError(f"nothing to resume: no {self.file}", str(folder),
                                 f"start the {self.what} without --resume")

    def load(self, folder: str | Path) -> dict[str, Any]:
        """The checkpoint to resume from (after :meth:`prepare`): refused when it is not a
        checkpoint of this kind and version, or its run has finished."""
        path = self.checkpoint(folder)
        self.prepare(folder, resume=True)
        state = load_checkpoint(path)
        if any(state.get(key) != value for key, value in self.stamp.items()) or \
                any(key not in state for key in self.required):
            raise ProxylessError(f"not a {self.what} checkpoint of this version", str(path),
                                 f"resume only runs written by 'proxyless {self.command}'")
        if state.get("finished"):
            raise ProxylessError(f"this {self.what} has already finished", str(folder),
                                 f"read {self.results}, or choose another --out")
        return state
