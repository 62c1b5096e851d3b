"""One error type for every bad input the user can give.

The command line turns it into exactly one line on stderr,
``error: <what> (<where>): <how to fix>``, and exit code 2, with no traceback.
"""

from __future__ import annotations


class ProxylessError(Exception):
    """A user-facing error: what went wrong, where, and how to fix it."""

    def __init__(self, what: str, where: str = "", fix: str = "") -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.line())

    def __reduce__(self) -> tuple:
        # raised in a worker process (ProgramPool), it crosses back pickled: keep the three parts
        return type(self), (self.what, self.where, self.fix)

    def line(self) -> str:
        text = f"error: {self.what}"
        if self.where:
            text += f" ({self.where})"
        if self.fix:
            text += f": {self.fix}"
        return " ".join(text.split("\n")).translate(LINE_BREAKS)


# every other character that ends a line (str.splitlines, a terminal's carriage return), shown escaped:
# a user's value holding one must not break the one line
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def require_file(path, what: str = "file", fix: str = "check the path") -> None:
    """Raise a ProxylessError when ``path`` is not an existing file."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise ProxylessError(f"{what} not found", str(p), fix)
    if not p.is_file():
        raise ProxylessError(f"{what} is not a file", str(p), fix)
