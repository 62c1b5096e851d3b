"""Progress output that fits where it goes: a bar on a terminal, a plain line now and then otherwise.

Every command shows progress through :func:`progress_bar`, which returns an object with tqdm's
calls (``update``, ``set_postfix``, ``set_description``, ``write``, ``close``):

* a tqdm bar when stderr is a terminal;
* a :class:`LineProgress` when stderr is a file or a pipe (CI, ``nohup``, a cluster job): one
  plain line every 30 seconds (``$PROXYLESS_PROGRESS_SECONDS``) and one at the end, never a
  carriage-return frame;
* a :class:`NoProgress` when progress is off (``--no-progress``, ranks other than 0).

:func:`add_option` gives a command its ``--no-progress``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

LINE_INTERVAL_S = 30.0  # seconds between two plain progress lines ($PROXYLESS_PROGRESS_SECONDS)


def add_option(parser) -> None:
    """``--no-progress`` (``args.no_progress``), the same on every command that shows progress."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress output (bars on a terminal, periodic lines in a log)")


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _postfix_text(postfix: dict[str, Any] | None, kwargs: dict[str, Any]) -> str:
    items = {**(postfix or {}), **kwargs}
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in items.items())


class NoProgress:
    """Progress switched off: updates do nothing, ``write`` still prints."""

    def __init__(self, total: int | None = None, initial: int = 0) -> None:
        self.total = total
        self.n = initial

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        pass

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LineProgress(NoProgress):
    """Plain lines for a log: ``desc: n/total unit (p%), elapsed, about T left, postfix`` every
    ``interval`` seconds while it moves, and a last one on ``close`` if any was printed."""

    def __init__(self, total: int | None = None, initial: int = 0, desc: str = "", unit: str = "it",
                 interval: float = LINE_INTERVAL_S, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(total, initial)
        self.desc, self.unit, self.interval = desc, unit, interval
        self.stream = stream
        self.clock = clock
        self.start = self.last = clock()
        self.initial = initial
        self.postfix = ""
        self.printed_at: int | None = None

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self.last >= self.interval:
            self._print()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        self.postfix = _postfix_text(ordered_dict, kwargs)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def line(self) -> str:
        """The current state as one line."""
        elapsed = self.clock() - self.start
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{done} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{_duration(elapsed)} elapsed")
        moved = self.n - self.initial
        if self.total and 0 < moved and self.n < self.total:
            parts.append(f"about {_duration(elapsed / moved * (self.total - self.n))} left")
        if self.postfix:
            parts.append(self.postfix)
        return (f"{self.desc}: " if self.desc else "") + ", ".join(parts)

    def _print(self) -> None:
        print(self.line(), file=self.stream or sys.stderr, flush=True)
        self.last = self.clock()
        self.printed_at = self.n

    def close(self) -> None:
        if self.printed_at is not None and self.printed_at != self.n:
            self._print()


def line_interval() -> float:
    """Seconds between plain progress lines: ``$PROXYLESS_PROGRESS_SECONDS`` or 30."""
    text = os.environ.get("PROXYLESS_PROGRESS_SECONDS", "")
    try:
        value = float(text)
    except ValueError:
        return LINE_INTERVAL_S
    return value if math.isfinite(value) and value >= 0 else LINE_INTERVAL_S


def progress_bar(total: int | None = None, *, initial: int = 0, desc: str = "", unit: str = "it",
                 enabled: bool = True, leave: bool = False, stream: TextIO | None = None,
                 interval: float | None = None):
    """Progress over ``total`` steps (``initial`` already done) that fits ``stream`` (stderr)."""
    if not enabled:
        return NoProgress(total, initial)
    stream = stream or sys.stderr
    if not is_terminal(stream):
        return LineProgress(total, initial, desc, unit, line_interval() if interval is None else interval,
                            stream)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc or None, unit=unit, leave=leave, file=stream,
                dynamic_ncols=True)
