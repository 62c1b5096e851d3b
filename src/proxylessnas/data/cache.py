"""On-disk cache of decoded datasets: one ``<key>.pt`` file per (source, files, resolution)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from proxylessnas.runtime.atomic import atomic_write

CACHE_VERSION = 1  # bump when the decoded layout changes, so old files are not reused


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$PROXYLESS_CACHE/datasets``, else ``~/.cache/proxylessnas/datasets``
    (the same layout as the latency tables' ``.../latency``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("PROXYLESS_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "proxylessnas") / "datasets"


def cache_key(name: str, description: object) -> str:
    """A readable, content-addressed file stem: ``<name>-<sha256 of description>``.

    ``description`` is any JSON-able value; callers put in the source path, its files with
    sizes and mtimes, and the resolution, so an edited source gets a new key.
    """
    text = json.dumps([CACHE_VERSION, description], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return f"{safe}-{digest}"


def cached(
    key: str, build: Callable[[], dict], cache_dir: str | os.PathLike | None, enabled: bool = True
) -> dict:
    """The dict stored under ``key``, or ``build()`` saved there first.

    A cache file that cannot be read is rebuilt (with a warning), never trusted. A cache
    directory that cannot be written only costs the next run a decode.
    """
    if not enabled:
        return build()
    path = cache_root(cache_dir) / f"{key}.pt"
    if path.is_file():
        try:
            with warnings.catch_warnings():  # torch's own (pickle protocol, weights_only advice) say no more
                warnings.simplefilter("ignore")
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable cache is rebuilt
            warnings.warn(f"dataset cache {path} is unreadable ({type(error).__name__}); decoding the "
                          "dataset again", stacklevel=2)
    value = build()
    try:
        atomic_write(path, lambda file: torch.save(value, file), suffix=".tmp")
    except OSError as error:
        warnings.warn(f"cannot write dataset cache {path} ({error.strerror or type(error).__name__}); the "
                      "next run decodes the dataset again", stacklevel=2)
    return value
