"""``key=value`` overrides of a command line, split once for every command that takes them.

:func:`split_overrides` keeps each value as text (a recipe converts it by its field's type);
:func:`parse_overrides` reads each as a YAML scalar (``5`` -> 5, ``true`` -> True, ``[1, 2]`` ->
a list; what YAML cannot read stays text).
"""

from __future__ import annotations

from typing import Any

import yaml

from proxylessnas.errors import ProxylessError


def split_overrides(items: list[str], example: str) -> dict[str, str]:
    """``["lr=0.1", "epochs=5"]`` -> ``{"lr": "0.1", "epochs": "5"}``; ``example`` goes into the
    error for an item without ``=`` (or without a key)."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ProxylessError(f"override '{item}' is not key=value", "overrides", f"write e.g. {example}")
        result[key.strip()] = value
    return result


def parse_overrides(items: list[str], example: str = "search.epochs=10") -> dict[str, Any]:
    """``["search.epochs=5", "run.plots=false"]`` -> ``{"search.epochs": 5, "run.plots": False}``."""
    return {key: _yaml_scalar(text) for key, text in split_overrides(items, example).items()}


def _yaml_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except (yaml.YAMLError, ValueError, RecursionError):  # also an int of thousands of digits
        return text
