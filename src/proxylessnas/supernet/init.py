"""Initialisations that let random-path supernet training learn from the first steps.

With one path sampled per layer and step, a layer whose candidates compute unrelated random
functions hands the next layer features in a different "coordinate system" every step; the
shared layers after it cannot fit all of them at once and a short search stays near chance
(docs/supernet.md, "Training the supernet in short searches"). Two remedies, both on by default
in :class:`~proxylessnas.supernet.SuperNet`:

- :func:`embed_smallest_candidate`: every MBConv candidate of a layer starts as the *same*
  function as the layer's smallest candidate (its weights embedded, the rest neutral), so at
  the start every path computes the same network and the candidates grow apart by training;
- :func:`zero_init_residual_branches`: candidates behind an identity shortcut start as the
  identity (last BatchNorm scale 0; Goyal et al. 2017 for ResNets).

A graph space's edges (NAS-Bench-201: none, skip, 1x1 and 3x3 ReLU-Conv-BN, 3x3 avg pool) have
no smallest candidate to embed, and skip and pool pass their input's coordinates on unchanged;
:func:`identity_init_edge_convs` (on by default in
:class:`~proxylessnas.supernet.graph_supernet.GraphSuperNet`) starts every same-shape conv
candidate as the identity instead (a Dirac kernel: ``conv(x) = x``), so at the start the conv
candidates compute ``BN(relu(x))`` and every non-zero candidate speaks its input's coordinates
(the tree cell's separable convs likewise start as ``relu(BN(x))``).
Measured at 16x16 (benchmarks/nasbench201_probe.py, 390 steps, uniform paths): train accuracy
26.3 % against 16.5 % with the default init (embedding the 1x1 conv in the 3x3: 17.2 %).

The derived net inherits whatever the supernet learned, so nothing else depends on them.
Rejected: sharing the weights themselves (once-for-all style) changes the search space's
meaning (candidates could no longer differ independently); copies only fix the starting point.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from proxylessnas.ops.blocks import ConvBNAct, MBConv
from proxylessnas.ops.cell_blocks import ReLUConvBN
from proxylessnas.ops.tree_blocks import SepConv
from proxylessnas.supernet.mixed_op import MixedOp


def _copy_batch_norm(source: nn.BatchNorm2d, target: nn.BatchNorm2d, channels: int) -> None:
    target.weight[:channels] = source.weight
    target.bias[:channels] = source.bias
    target.running_mean[:channels] = source.running_mean
    target.running_var[:channels] = source.running_var


def _embeds(small: MBConv, large: MBConv) -> bool:
    """True when ``large`` can compute ``small``'s function exactly: both with or both without
    an expansion conv, no fewer hidden channels, a kernel no smaller (same stride)."""
    same_kind = (small.expand is None) == (large.expand is None)
    small_mid, large_mid = small.depthwise.conv.out_channels, large.depthwise.conv.out_channels
    small_k, large_k = small.depthwise.conv.kernel_size[0], large.depthwise.conv.kernel_size[0]
    return (same_kind and small_mid <= large_mid and small_k <= large_k
            and small.depthwise.conv.stride == large.depthwise.conv.stride
            and small.project.conv.out_channels == large.project.conv.out_channels)


@torch.no_grad()
def embed_block(small: MBConv, large: MBConv) -> None:
    """Make ``large`` compute ``small(x)``: the first ``mid_small`` hidden channels take
    ``small``'s expansion and BatchNorms, its depthwise kernel in the centre of the larger one
    (zero ring: a k x k kernel with padding k // 2 then equals the small one with its padding),
    and the projection reads only those channels (the weights of the extra hidden channels are
    0). Extra channels keep their random expansion and depthwise weights, so their gradients
    differ and the copies do not stay tied."""
    mid = small.depthwise.conv.out_channels
    if small.expand is not None:
        large.expand.conv.weight[:mid] = small.expand.conv.weight
        _copy_batch_norm(small.expand.bn, large.expand.bn, mid)
    small_k, large_k = small.depthwise.conv.kernel_size[0], large.depthwise.conv.kernel_size[0]
    offset = (large_k - small_k) // 2
    kernel = large.depthwise.conv.weight
    kernel[:mid] = 0.0
    kernel[:mid, :, offset:offset + small_k, offset:offset + small_k] = small.depthwise.conv.weight
    _copy_batch_norm(small.depthwise.bn, large.depthwise.bn, mid)
    large.project.conv.weight.zero_()
    large.project.conv.weight[:, :mid] = small.project.conv.weight
    _copy_batch_norm(small.project.bn, large.project.bn, large.project.bn.num_features)


def _size(block: MBConv) -> tuple[int, int]:
    return block.depthwise.conv.out_channels, block.depthwise.conv.kernel_size[0]


def embed_smallest_candidate(mixed_ops: Sequence[MixedOp]) -> int:
    """In every layer, every MBConv candidate that can embed the layer's smallest candidate of
    its kind (with / without expansion conv) starts as that candidate's function
    (:func:`embed_block`); returns the number of candidates changed. For
    ``mb_k{3,5,7}_e{3,6}`` all six candidates of a layer then compute ``mb_k3_e3``."""
    count = 0
    for mixed in mixed_ops:
        blocks = [b for b in (mixed.body(i) for i in range(mixed.num_candidates)) if isinstance(b, MBConv)]
        for has_expand in (True, False):
            kind = [b for b in blocks if (b.expand is not None) == has_expand]
            if len(kind) < 2:
                continue
            smallest = min(kind, key=_size)
            for block in kind:
                if block is not smallest and _embeds(smallest, block):
                    embed_block(smallest, block)
                    count += 1
    return count


@torch.no_grad()
def zero_init_residual_branches(mixed_ops: Sequence[MixedOp]) -> int:
    """``project.bn.weight = 0`` in every MBConv candidate behind an identity shortcut: such a
    layer starts as ``y = x`` whichever path is sampled. Returns the number of candidates."""
    count = 0
    for mixed in mixed_ops:
        if not mixed.shortcut:
            continue
        for index in range(mixed.num_candidates):
            body = mixed.body(index)
            if isinstance(body, MBConv) and isinstance(body.project, ConvBNAct):
                nn.init.zeros_(body.project.bn.weight)
                count += 1
    return count


def _keeps_shape(conv: nn.Conv2d) -> bool:
    return conv.stride == (1, 1) and conv.in_channels == conv.out_channels and conv.kernel_size[0] % 2 == 1


def _dirac(conv: nn.Conv2d) -> None:
    nn.init.dirac_(conv.weight, groups=conv.groups)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


@torch.no_grad()
def identity_init_edge_convs(mixed_ops: Sequence[MixedOp]) -> int:
    """Start every shape-keeping conv candidate (stride 1, ``C_in == C_out``, odd kernels) as the
    identity with ``nn.init.dirac_``: a ReLU-Conv-BN (NAS-Bench-201) then computes ``BN(relu(x))``,
    a BN-ReLU-depthwise-pointwise :class:`~proxylessnas.ops.tree_blocks.SepConv` (the tree cell's
    sep/dil convs, both convs set) ``relu(BN(x))``. Returns the count of candidates set."""
    count = 0
    for mixed in mixed_ops:
        for index in range(mixed.num_candidates):
            body = mixed.body(index)
            convs = ([body.conv] if isinstance(body, ReLUConvBN) else
                     [body.depthwise, body.pointwise] if isinstance(body, SepConv) else [])
            if convs and all(_keeps_shape(conv) for conv in convs):
                for conv in convs:
                    _dirac(conv)
                count += 1
    return count
