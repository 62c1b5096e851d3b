"""No NaN leaves the building: the loss guard of the training loops and the weight check that
comes before a checkpoint or an export is written.

A loss that became NaN or infinite raises :class:`NonFiniteLoss` before its backward pass (the
loops turn it into one :class:`~proxylessnas.errors.ProxylessError` line and keep the last good
checkpoint); weights holding NaN or infinite values are refused with their count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from proxylessnas.errors import ProxylessError


class NonFiniteLoss(Exception):
    """A loss became NaN or infinite; ``what`` says which one."""

    def __init__(self, what: str, value: float) -> None:
        self.what = what
        self.value = value
        super().__init__(f"{what} is {value}")


def check_finite(what: str, loss: Tensor | float) -> float:
    """The loss as a float; :class:`NonFiniteLoss` when it is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteLoss(what, value)
    return value


def count_nonfinite(tensors: Mapping[str, Tensor] | Iterable[Tensor]) -> tuple[int, int]:
    """(NaN or infinite values, all values) over the floating-point tensors of ``tensors`` (a state
    dict or tensors); integer tensors (BatchNorm's batch counter) cannot hold either."""
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    bad = total = 0
    for tensor in values:
        if isinstance(tensor, Tensor) and tensor.is_floating_point():
            bad += int((~torch.isfinite(tensor.detach())).sum())
            total += tensor.numel()
    return bad, total


def require_finite_weights(model: nn.Module | Mapping[str, Tensor], where: str, fix: str) -> None:
    """Raise a :class:`ProxylessError` naming how many values are NaN or infinite, if any are, in
    ``model``'s parameters and buffers (or in a state dict)."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    bad, total = count_nonfinite(state)
    if bad:
        raise ProxylessError(f"the weights hold {bad} NaN or infinite value(s) of {total}", where, fix)
