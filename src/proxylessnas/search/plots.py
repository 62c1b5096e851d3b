"""The plots of a search as an end-of-epoch hook: ``plots/`` redrawn from the run folder's files
after every epoch and once more at the end (``run.plots``), by rank 0.

Plots are a by-product: what stops a drawing becomes a note (said once, kept for the summary),
never the end of the search.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.distributed import DistributedContext


def plot_run_dir(run_dir: Path) -> str | None:
    """Draw plots/ with :func:`proxylessnas.viz.plot_run`; returns why not, if it could not."""
    try:
        from proxylessnas.viz import plot_run
    except ImportError:
        return "plots skipped: proxylessnas.viz.plot_run is not available in this install"
    try:
        plot_run(run_dir)
    except ProxylessError as err:
        return f"plots skipped: {err.line()}"
    except Exception as err:  # noqa: BLE001 - plots are a by-product: a drawing bug must not end a search
        return f"plots skipped: {type(err).__name__}: {err} (a plotting bug; the search goes on)"
    return None


class PlotHook:
    """``after_epoch(write)`` on every rank (rank 0 draws), ``at_end()`` on rank 0 alone (inside
    the final phase); ``notes`` holds each distinct reason a drawing was skipped."""

    def __init__(self, run_dir: Path, enabled: bool, context: DistributedContext) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.context = context
        self.notes: list[str] = []

    def after_epoch(self, write: Callable[[str], None]) -> None:
        """Redraw; a new note is also written (``write``, the progress's)."""
        if self.enabled and self._keep(self.context.on_main(plot_run_dir, self.run_dir)):
            write(self.notes[-1])

    def at_end(self) -> None:
        if self.enabled:
            self._keep(plot_run_dir(self.run_dir))

    def _keep(self, note: str | None) -> bool:
        if note and note not in self.notes:
            self.notes.append(note)
            return True
        return False
