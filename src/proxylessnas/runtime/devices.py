"""The torch device a run asks for by name."""

from __future__ import annotations

import torch

from proxylessnas.errors import ProxylessError


def resolve_device(name: str, where: str = "--device", cpu: str = "--device cpu") -> torch.device:
    """``auto``: CUDA when available, else the CPU; any other name as torch spells it (``cpu``,
    ``cuda``, ``cuda:1``, ...). A name torch does not know, or CUDA where there is none, is a
    :class:`ProxylessError` naming ``where`` (the option or config key); ``cpu`` is how to ask
    for the CPU there (``--device cpu``, ``run.device=cpu``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ProxylessError(f"unknown device '{name}'", where, "use cpu, cuda or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProxylessError("CUDA is not available", where, f"use {cpu}")
    return device
