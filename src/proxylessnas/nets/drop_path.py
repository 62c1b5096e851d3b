"""Drop-path (DropPath of Zoph et al., CVPR 2018; after FractalNet, Larsson et al. 2017) on the
units of a graph net that its space names.

A unit is a branch of the net: the edges that carry it into the node where it is summed. In
training, image b's output of unit u is multiplied by k_ub = m_ub / (1 - p), m_ub ~
Bernoulli(1 - p), so E[k] = 1; an edge inside several units (a leaf inside a dropped level-2
branch) takes the product of their k. In evaluation nothing is dropped. All k of one forward come
from one ``torch.rand`` on torch's global generator of the tensor's device, which checkpoints save
and resume restores (``runtime/checkpoint.capture_rng_state``): a resumed run draws the same
masks.

Units per space family (:data:`DROP_PATH_UNITS`): ``pyramid-tree``: every branch of every tree
node (``space/pyramid_tree.drop_path_units``), the unit of the Path-Level EAS release
(han-cai/PathLevel-EAS, models/tree_node.py, ``path_drop_forward``). The release draws once per
batch; we draw per image (the same expectation, less gradient noise: the rejected alternative
zeroes a branch for the whole batch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from proxylessnas.space import pyramid_tree
from proxylessnas.space.graph import GraphSpace

DROP_PATH_UNITS: dict[str, Callable[[GraphSpace], tuple[tuple[int, ...], ...]]] = {
    pyramid_tree.NAME: pyramid_tree.drop_path_units,
}
"""Space name -> its drop-path units (tuples of edge positions)."""


def drop_path_units(space: GraphSpace) -> tuple[tuple[int, ...], ...]:
    """The drop-path units of ``space`` (none for a family without them)."""
    units = DROP_PATH_UNITS.get(space.name)
    return units(space) if units is not None else ()


def edge_units(units: tuple[tuple[int, ...], ...]) -> dict[int, tuple[int, ...]]:
    """Edge position -> the positions in ``units`` of the units that contain it."""
    found: dict[int, list[int]] = {}
    for u, unit in enumerate(units):
        for edge in unit:
            found.setdefault(edge, []).append(u)
    return {edge: tuple(us) for edge, us in found.items()}


def keep_factors(num_units: int, batch: int, rate: float, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(units, batch) factors k = Bernoulli(1 - rate) / (1 - rate): 0 or 1 / (1 - rate)."""
    keep = 1.0 - rate
    return ((torch.rand(num_units, batch, device=device) < keep).to(dtype) / keep)
