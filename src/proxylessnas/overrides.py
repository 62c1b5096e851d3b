"""``key=value`` overrides of a command line: one parser for every command that takes them.

:func:`parse_overrides` splits the items and reads each value as a YAML scalar (``5`` -> 5,
``0.1`` -> 0.1, ``true`` -> True, ``[1, 2]`` -> a list, ``null`` or nothing -> None, ``'5'`` ->
the text 5; what YAML cannot read stays text). The search config (``section.field=value``), the
training recipe (``field=value``) and the latency commands (space options) all parse with it;
each then converts a value to its field's type with :func:`convert` (the search config and the
recipe) or checks it by its kind (space options, :mod:`proxylessnas.arguments`), and words its
own error.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

import yaml

from proxylessnas.errors import ProxylessError

__all__ = ["convert", "parse_overrides"]

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NONE_WORDS = ("none", "null")


def parse_overrides(items: list[str], example: str = "search.epochs=10") -> dict[str, Any]:
    """``["search.epochs=5", "run.plots=false"]`` -> ``{"search.epochs": 5, "run.plots": False}``;
    ``example`` goes into the error for an item without ``=`` (or without a key)."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ProxylessError(f"override '{item}' is not key=value", "overrides", f"write e.g. {example}")
        result[key.strip()] = _yaml_scalar(value)
    return result


def _yaml_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except (yaml.YAMLError, ValueError, RecursionError):  # also an int of thousands of digits
        return text


def convert(value: Any, kind: Any) -> Any:
    """``value`` (a parsed override or a config file's value) as the type hint ``kind``: ``int``,
    ``float``, ``bool``, ``str``, ``dict`` or one of them ``| None``; ValueError when it is not.

    ``X | None`` takes None and the words none / null; ``bool`` takes true / false, the words
    yes / no, on / off, 1 / 0 and the integers 1 / 0; ``int`` takes a whole number (also 5.0 or
    the text "5"); ``float`` any number or numeric text (range checks come after, by each field's
    kind); ``str`` anything but a mapping, a list or None. Other hints pass the value through."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
            return None
        kind = options[0]
        origin = typing.get_origin(kind)
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ValueError(value)
        return dict(value)
    if kind is bool:
        return _boolean(value)
    if kind is int:
        return _whole(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(value)
        try:
            return float(value)
        except OverflowError:  # an int beyond the float range
            raise ValueError(value) from None
    if kind is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ValueError(value)
        return str(value)
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ValueError(value)


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = float(value)
    if not math.isfinite(number) or number != int(number):
        raise ValueError(value)
    return int(number)
