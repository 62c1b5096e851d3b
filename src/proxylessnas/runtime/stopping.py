"""Clean stops: SIGINT or SIGTERM finishes the current step, the run writes its checkpoint and
raises :class:`RunInterrupted`; the command prints the resume command and exits 128 + signal
(130 / 143). A second signal stops at once (KeyboardInterrupt). Used by search and train.
Outside those loops (loading data, building, a final phase) SIGTERM raises :class:`Terminated`,
which the command line turns into one line and exit 143, as SIGINT's KeyboardInterrupt is.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class RunInterrupted(Exception):
    """SIGINT or SIGTERM arrived; the checkpoint was written and the run can be resumed.

    ``epoch`` counts from 0 (as in the checkpoint), ``step`` the steps of it already done."""

    def __init__(self, signal_number: int, checkpoint: Path, epoch: int, step: int) -> None:
        self.signal_number = signal_number
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.step = step
        super().__init__(f"{self.signal_name} {self.where}; checkpoint saved in {checkpoint}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def where(self) -> str:
        """For messages, epochs counted from 1 as in the log."""
        return f"at epoch {self.epoch + 1} step {self.step}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number

    def report(self, command: str, out: str | Path, show: bool = True) -> int:
        """Print the one line (what stopped, where, the resume command); returns the exit code."""
        if show:
            print(f"error: {command} stopped by {self.signal_name} {self.where} ({self.checkpoint}): "
                  f"resume with '{resume_command(command, out)}'", file=sys.stderr, flush=True)
        return self.exit_code


def resume_command(command: str, out: str | Path, *overrides: str) -> str:
    """``proxyless COMMAND --resume --out OUT [key=value ...]``, quoted for a shell."""
    return " ".join(["proxyless", command, "--resume", "--out", shlex.quote(str(out)),
                     *(shlex.quote(item) for item in overrides)])


def in_this_process(handler: Callable[[int, Any], None]) -> Callable[[int, Any], None]:
    """``handler`` in the process that installs it; in a process forked from it (a library's
    helper, e.g. a runtime's telemetry sender, which its parent ends with SIGTERM) the signal's
    default action, as if no handler had been installed."""
    owner = os.getpid()

    def guarded(number: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
            return
        handler(number, frame)

    return guarded


@contextlib.contextmanager
def handling_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM inside the block (only in this process, not in processes
    forked from it), the previous handlers after it (signal handlers can only be installed from
    the main thread; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = in_this_process(handler)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


class Terminated(BaseException):
    """SIGTERM arrived outside a loop that saves its position (a BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` swallows it)."""

    exit_code = 128 + signal.SIGTERM


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Inside the block SIGTERM raises :class:`Terminated` (where the default would end the
    process without a word); :func:`stop_on_signals` takes over inside the loops."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(number, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, in_this_process(handler))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[dict[str, int | None]]:
    """Turn the first SIGINT/SIGTERM into a request (``flag["signal"]``); a second one stops at once."""
    flag: dict[str, int | None] = {"signal": None}

    def handler(number, frame):
        if flag["signal"] is not None:
            raise KeyboardInterrupt
        flag["signal"] = number

    with handling_signals(handler):
        yield flag
