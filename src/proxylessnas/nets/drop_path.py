"""Drop-path (Larsson et al. 2017's FractalNet; "DropPath" of Zoph et al., CVPR 2018) on the
edges of a graph net that its space names as drop-path units.

In training, each unit's output y of image b becomes m_b * y / (1 - p), with m_b ~ Bernoulli(1 - p)
drawn per image and per unit, so E[output] = y; in evaluation it is y. The masks come from
torch's global generator of the tensor's device, which checkpoints save and resume restores
(``runtime/checkpoint.capture_rng_state``), so a resumed run draws the same masks.

Units per space family (:data:`DROP_PATH_UNITS`): ``pyramid-tree``: the 12 leaf edges of every
tree cell. The Path-Level EAS release (han-cai/PathLevel-EAS, models/tree_node.py) drops every
branch of every tree node (a leaf edge; a level-2 edge with the two leaves under it; a root
branch with its BN and skip) with one draw per batch; we drop the leaf edges only, per image:
the leaves are where the searched ops sit, and a draw per image gives the same expectation with
less gradient noise than one per batch (the rejected alternative).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from proxylessnas.space import pyramid_tree
from proxylessnas.space.graph import GraphSpace

DROP_PATH_UNITS: dict[str, Callable[[GraphSpace], tuple[int, ...]]] = {
    pyramid_tree.NAME: pyramid_tree.leaf_edge_indices,
}
"""Space name -> the edge positions that drop-path may drop."""


def drop_path_units(space: GraphSpace) -> tuple[int, ...]:
    """The drop-path units of ``space`` (none for a family without them)."""
    units = DROP_PATH_UNITS.get(space.name)
    return units(space) if units is not None else ()


def drop_path(x: torch.Tensor, rate: float) -> torch.Tensor:
    """``x`` (B, ...) with each sample kept with probability 1 - ``rate`` and scaled by
    1 / (1 - rate), or zeroed."""
    keep = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = (torch.rand(shape, device=x.device) < keep).to(x.dtype)
    return x * mask / keep
