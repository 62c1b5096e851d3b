"""A table's identity: the setting its timings belong to, and the check before a table is used.

A latency table prices blocks on one runtime, in one version, on one CPU model (or GPU), at one
precision, batch size and thread count; another of any of these ranks networks differently. The
provenance records them all (:meth:`~proxylessnas.hardware.measure.Backend.provenance`), and
:func:`check_identity` compares a table with the setting being targeted: a difference is a
one-line error, unless the caller passes ``allow_mismatch`` (``--allow-mismatch``), which turns it
into a one-line warning. Never silently: a table from another setting is a different cost model.
"""

from __future__ import annotations

import warnings
from typing import Any

from proxylessnas.errors import ProxylessError

IDENTITY = (("backend", "backend"), ("backend_version", "runtime version"), ("device", "device"),
            ("dtype", "precision"), ("batch_size", "batch size"), ("threads", "threads"))
"""(provenance field, name in messages), in the order differences are reported."""


def identity(provenance: dict[str, Any]) -> dict[str, Any]:
    """The identity fields of a provenance (missing ones are None)."""
    return {name: provenance.get(name) for name, _ in IDENTITY}


def differences(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """How ``recorded`` differs from ``wanted``, e.g. ``["runtime version 1.31.0, not 1.32.0"]``.
    ``threads`` of a GPU table is None on both sides and never differs."""
    found = []
    for name, label in IDENTITY:
        have, want = recorded.get(name), wanted.get(name)
        if have != want:
            found.append(f"{label} {have if have is not None else 'unrecorded'}, not {want}")
    return found


def check_identity(provenance: dict[str, Any], wanted: dict[str, Any], where: str, *,
                   allow_mismatch: bool = False, fix: str = "build a table for this setting") -> list[str]:
    """Refuse a table whose identity differs from ``wanted`` (one line naming every difference), or,
    with ``allow_mismatch``, warn once and return the differences."""
    found = differences(provenance, wanted)
    if found and not allow_mismatch:
        raise ProxylessError(f"latency table was measured with {'; '.join(found)}", where,
                             f"{fix}, or pass --allow-mismatch to use it anyway")
    if found:
        warnings.warn(f"using a latency table measured with {'; '.join(found)} ({where})", stacklevel=2)
    return found
