"""Checkpoints: atomic writes, safe loads, and the random state needed to resume exactly.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts written with
``torch.save``. Loading uses ``torch.load(weights_only=True)``: a file from someone else can hold
data only, never code (pickled classes or functions are refused). Writing goes to a temporary
file beside the target, flushed and fsynced, then ``os.replace``: a crash never leaves a
half-written checkpoint under the real name.

Random state (Python ``random``, NumPy's global generator, torch CPU and every CUDA device) is
stored as tensors and plain lists so that it, too, loads under ``weights_only=True``.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.atomic import atomic_write
from proxylessnas.runtime.torch_files import read_torch_file

__all__ = ["capture_rng_state", "load_checkpoint", "restore_rng_state", "save_checkpoint"]


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically, fsynced (:func:`~proxylessnas.runtime.atomic.atomic_write`)."""
    atomic_write(path, lambda handle: torch.save(state, handle), suffix=".tmp", fsync=True)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    A missing, truncated, corrupt or code-carrying file raises :class:`ProxylessError`, and so
    does a file of another kind (an arch JSON, safetensors weights, ...), named as what it is.
    """
    state = read_torch_file(path, "checkpoint", map_location)
    if not isinstance(state, dict):
        raise ProxylessError(f"checkpoint holds a {type(state).__name__}, not a dict", str(path),
                             "give a checkpoint written by proxylessnas")
    return state


def capture_rng_state() -> dict[str, Any]:
    """The state of every random generator a run touches, as weights_only-loadable data."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "kind": numpy_state[0],
            "keys": torch.from_numpy(np.asarray(numpy_state[1], dtype=np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the generators saved by :func:`capture_rng_state`."""
    try:
        python = state["python"]
        random.setstate((python["version"], tuple(int(v) for v in python["state"]), python["gauss"]))
        numpy_state = state["numpy"]
        keys = numpy_state["keys"]
        keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
        np.random.set_state((numpy_state["kind"], keys.astype(np.uint32), int(numpy_state["pos"]),
                             int(numpy_state["has_gauss"]), float(numpy_state["cached_gaussian"])))
        torch.set_rng_state(state["torch"].cpu())
    except (KeyError, TypeError, ValueError) as err:
        raise ProxylessError(f"malformed random-generator state ({err})", "checkpoint rng_state",
                             "use a checkpoint written by proxylessnas") from None
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
        else:  # a different GPU count: seed what we can, in order
            for index, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state.cpu(), index)
