"""Small pure functions of the study: latency gaps and matches, ranks, tables, durations, specs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cifar_study.settings import REPO


def relative_gap(value: float, reference: float) -> float:
    """(value - reference) / reference."""
    return value / reference - 1.0


def closest_to(latencies: dict[str, float], reference: float) -> str:
    """The name whose latency is closest to ``reference`` (ties: the first)."""
    if not latencies:
        raise ValueError("no latencies to choose from")
    return min(latencies, key=lambda name: abs(latencies[name] - reference))


def accept_matched(candidates: Sequence[tuple[str, float]], reference: float, tolerance: float,
                   count: int) -> list[str]:
    """The first ``count`` candidates, in the given (random) order, within +-tolerance of ``reference``.

    Order, not closeness, decides: the matched nets stay a random sample of the latency band."""
    inside = [name for name, latency in candidates if abs(relative_gap(latency, reference)) <= tolerance]
    return inside[:count]


def ops_differ(first: dict[str, str], second: dict[str, str]) -> int:
    """Number of layers whose op differs between two ``choices`` mappings (same space)."""
    return sum(first[label] != second[label] for label in first)


def rank_descending(values: dict[str, float]) -> dict[str, int]:
    """1 for the largest value, 2 for the next, ... (ties share the better rank)."""
    ordered = sorted(values.values(), reverse=True)
    return {name: ordered.index(value) + 1 for name, value in values.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """3725 -> '1:02:05', 125 -> '2:05'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def with_option(spec: str, option: str) -> str:
    """A dataset spec with one more ``key=value`` option."""
    return f"{spec}{'&' if '?' in spec else '?'}{option}"


def dataset_folder(spec: str) -> Path | None:
    """The folder of a ``NAME:PATH[?options]`` spec (None when it names none)."""
    body = spec.split("?", 1)[0]
    if ":" not in body:
        return None
    return Path(body.split(":", 1)[1]).expanduser()


def repository_relative(spec: str, cwd: Path) -> str:
    """The spec with its folder written relative to the repository (where the commands run);
    a relative folder in ``spec`` is taken relative to ``cwd``."""
    folder = dataset_folder(spec)
    if folder is None:
        return spec
    name, rest = spec.split(":", 1)
    options = rest.split("?", 1)[1] if "?" in rest else None
    absolute = folder if folder.is_absolute() else cwd / folder
    relative = os.path.relpath(absolute, REPO)
    return f"{name}:{relative}" + (f"?{options}" if options is not None else "")


def requested_target(search: dict[str, Any]) -> float:
    """A search's target as requested: ms on measured hardware, else the cost model's unit
    (results stored before the keys named their unit hold it as "target_latency")."""
    if "target_latency" in search:
        return search["target_latency"]
    measured = search.get("target_latency_ms")
    return search["target_latency_table"] if measured is None else measured
