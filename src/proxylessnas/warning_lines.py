"""Warnings as one line each: ``warning: <message>`` on stderr, each text once.

Python prints a warning on two or more lines (``file:line: Category: message``, then the source
line), and a library's message may run over paragraphs. The ``proxyless`` command runs every
command inside :func:`one_line_warnings`, so a warning never spreads over the lines before a
one-line ``error:``.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import TextIO

MAX_CHARS = 300


def one_line(text: str) -> str:
    """The first non-blank line of ``text``, whitespace collapsed, at most ``MAX_CHARS`` long."""
    first = next((line for line in str(text).splitlines() if line.strip()), "")
    line = " ".join(first.split())
    return line if len(line) <= MAX_CHARS else line[:MAX_CHARS - 3] + "..."


@contextlib.contextmanager
def one_line_warnings(stream: TextIO | None = None) -> Iterator[None]:
    """Inside the block, each warning the filters let through prints as one ``warning:`` line on
    ``stream`` (stderr), the same text only once."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = one_line(message)
        if text and text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=stream or sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
