"""Kinds of value a user gives: each check of a number or a path lives here, once.

A kind is an argparse ``type=`` (``add_argument("--epochs", type=positive_int)``): a bad value
ends as argparse's one line and exit code 2. The same kind checks values that come from recipes,
configs and dataset specs: ``kind.parse(text, where, name)`` and ``kind.check(value, where,
name)`` raise a :class:`~proxylessnas.errors.ProxylessError`; ``kind.accepts(value)`` only answers.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxylessnas.errors import ProxylessError

MAX_RESOLUTION = 4096  # input side in pixels: one 3-channel float image is already 200 MB
MAX_CHANNELS = 4096  # widths of a layer: a 4096 x 4096 1x1 conv is already 64 MB
MAX_CLASSES = 100_000  # classifier outputs: 100k x 1280 weights are already 500 MB
MAX_DEPTH = 64  # blocks per stage (or cells per stage)
MAX_SEED = 2**32 - 1  # numpy's and torch's seed range


class Kind:
    """A kind of value: ``read`` turns text into a value (ValueError when it cannot) and
    ``reason`` says what is wrong with a value (None when nothing is)."""

    def __init__(self, description: str, read: Callable[[str], Any], reason: Callable[[Any], str | None]):
        self.description = description
        self.read = read
        self.reason = reason
        self.__name__ = description  # argparse names a type by it

    def __repr__(self) -> str:
        return f"Kind({self.description!r})"

    def __call__(self, text: str) -> Any:
        """The argparse ``type=``: the value, or an ArgumentTypeError argparse turns into one line."""
        try:
            value = self.read(text)
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"'{text}' is not {self.description}") from None
        reason = self.reason(value)
        if reason:
            raise argparse.ArgumentTypeError(f"{text} {reason}")
        return value

    def accepts(self, value: Any) -> bool:
        return self.reason(value) is None

    def check(self, value: Any, where: str, name: str = "") -> Any:
        """``value`` when it is of this kind, else a ProxylessError naming ``name`` and ``where``."""
        reason = self.reason(value)
        if reason:
            shown = f"{name}={value}" if name else str(value)
            raise ProxylessError(f"{shown} {reason}", where, f"give {self.description}")
        return value

    def parse(self, text: str, where: str, name: str = "") -> Any:
        """``check`` of the value read from ``text``."""
        try:
            value = self.read(text)
        except (TypeError, ValueError, OverflowError):
            shown = f"{name}={text}" if name else f"'{text}'"
            fix = f"give {self.description}"
            raise ProxylessError(f"{shown} is not {self.description}", where, fix) from None
        return self.check(value, where, name)


def number(description: str, read: type, ok: Callable[[Any], bool]) -> Kind:
    """A kind of int (``read=int``; bools refused) or finite float (``read=float``)."""

    def reason(value: Any) -> str | None:
        typed = isinstance(value, int) if read is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not typed or not math.isfinite(value) or not ok(value):
            return f"is not {description}"
        return None

    return Kind(description, read, reason)


positive_int = number("a positive integer", int, lambda v: v >= 1)
non_negative_int = number("an integer >= 0", int, lambda v: v >= 0)
positive_float = number("a finite number > 0", float, lambda v: v > 0)
non_negative_float = number("a finite number >= 0", float, lambda v: v >= 0)
fraction = number("a fraction in (0, 1)", float, lambda v: 0 < v < 1)
rate = number("a number in [0, 1)", float, lambda v: 0 <= v < 1)
unit_interval = number("a number in [0, 1]", float, lambda v: 0 <= v <= 1)
seed = number(f"a seed from 0 to {MAX_SEED}", int, lambda v: 0 <= v <= MAX_SEED)
resolution = number(f"an input side of 1 to {MAX_RESOLUTION} pixels", int, lambda v: 1 <= v <= MAX_RESOLUTION)
channels = number(f"a channel count of 1 to {MAX_CHANNELS}", int, lambda v: 1 <= v <= MAX_CHANNELS)
num_classes = number(f"a number of classes from 1 to {MAX_CLASSES}", int, lambda v: 1 <= v <= MAX_CLASSES)
depth = number(f"a depth of 1 to {MAX_DEPTH} blocks", int, lambda v: 1 <= v <= MAX_DEPTH)
stride = number("a stride of 1 to 8", int, lambda v: 1 <= v <= 8)
kernel_size = number("an odd kernel size of 1 to 15", int, lambda v: 1 <= v <= 15 and v % 2 == 1)
expand_ratio = number("an expand ratio of 1 to 16", int, lambda v: 1 <= v <= 16)
width_mult = number("a width multiplier in (0, 8]", float, lambda v: 0 < v <= 8)


def list_of(kind: Kind, description: str) -> Kind:
    """A non-empty list (or tuple) of values of ``kind``; as text, comma-separated."""

    def reason(value: Any) -> str | None:
        if not isinstance(value, (list, tuple)) or not value:
            return f"is not {description}"
        return next((f"holds {item!r}, which {why}" for item in value if (why := kind.reason(item))), None)

    return Kind(description, lambda text: [kind.read(item) for item in text.split(",")], reason)


def _read_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


boolean = Kind("true or false (1/0, yes/no, on/off)", _read_bool,
               lambda v: None if isinstance(v, bool) else "is not true or false")


def _blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is a file (nothing can be made below it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _existing_file(value: Any) -> str | None:
    path = Path(value)
    if not path.exists():
        return "does not exist"
    return None if path.is_file() else "is a folder, not a file"


def _existing_folder(value: Any) -> str | None:
    path = Path(value)
    if not path.exists():
        return "does not exist"
    return None if path.is_dir() else "is a file, not a folder"


def _new_file(value: Any) -> str | None:
    path = Path(value)
    if path.is_dir() or str(value).endswith(("/", os.sep)):
        return "is a folder; give a file name"
    blocker = _blocking_file(path)
    return None if blocker is None else f"cannot be written: {blocker} is a file, not a folder"


def _output_folder(value: Any) -> str | None:
    path = Path(value)
    if path.exists() and not path.is_dir():
        return "is a file, not a folder"
    blocker = _blocking_file(path)
    return None if blocker is None else f"cannot be made: {blocker} is a file, not a folder"


existing_file = Kind("the path of an existing file", str, _existing_file)
existing_folder = Kind("the path of an existing folder", str, _existing_folder)
new_file = Kind("a file path (not a folder; it may be replaced)", str, _new_file)
output_folder = Kind("a folder path (existing or new, not a file)", str, _output_folder)


def require_suffix(path: str | Path, suffix: str, where: str) -> None:
    """Refuse a file name whose suffix is not ``suffix`` (an ONNX model in ``m.txt``)."""
    if not str(path).endswith(suffix):
        raise ProxylessError(f"{path} does not end in {suffix}", where, f"name the file *{suffix}")
