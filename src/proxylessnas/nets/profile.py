"""Per-layer parameters and multiply-accumulates of a standalone net, counted analytically.

``profile_net`` / ``count_params_macs`` take a chain's ``NetConfig`` or a graph net's
``GraphNetConfig`` (``nets/graph_net.py``: one row per edge, then the head). Every row is
counted by the op registry (:func:`~proxylessnas.nets.op_registry.op_params_macs`): conv MACs =
k * k * (C_in / groups) * C_out * H_out * W_out, linear MACs = C_in * C_out; parameters count
conv, BN (weight and bias) and linear weights (BN running statistics are buffers). The test
suite cross-checks both counts against torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

from proxylessnas.nets.config import NetConfig
from proxylessnas.nets.op_registry import op_params_macs
from proxylessnas.space.ops import HEAD_CONV, ClassifierOp, StemOp
from proxylessnas.space.shapes import Shape, conv_output_size


@dataclass(frozen=True)
class LayerProfile:
    label: str
    op: str
    input: Shape
    output: Shape
    params: int
    macs: int
    residual: bool = False


@singledispatch
def profile_net(config, resolution: int | None = None) -> list[LayerProfile]:
    """Per-layer rows of a net config (a graph net's is registered in ``nets/graph_net.py``)."""
    raise TypeError(f"no profile for {type(config).__name__}")


@profile_net.register
def _profile_chain(config: NetConfig, resolution: int | None = None) -> list[LayerProfile]:
    """One row for the stem, each block, the head and the classifier."""
    side = resolution or config.resolution
    parts = [("stem", StemOp(config.stem_kernel), config.in_chs, config.stem_chs, config.stem_stride, False),
             *((b.label, b.op, b.in_chs, b.out_chs, b.stride, b.residual) for b in config.blocks),
             ("head", HEAD_CONV, config.feature_chs, config.head_chs, 1, False)]
    rows: list[LayerProfile] = []
    here = Shape(side, side, config.in_chs)
    for label, op, in_chs, out_chs, stride, residual in parts:
        params, macs = op_params_macs(op, in_chs, out_chs, stride, here.height, here.width)
        out = Shape(conv_output_size(here.height, stride), conv_output_size(here.width, stride), out_chs)
        rows.append(LayerProfile(label, op.token, here, out, params, macs, residual))
        here = out
    classifier = ClassifierOp(config.dropout)
    params, macs = op_params_macs(classifier, config.head_chs, config.num_classes, 1, here.height, here.width)
    rows.append(LayerProfile("classifier", classifier.token, here, Shape(1, 1, config.num_classes), params,
                             macs))
    return rows


def count_params_macs(config, resolution: int | None = None) -> tuple[int, int]:
    rows = profile_net(config, resolution)
    return sum(r.params for r in rows), sum(r.macs for r in rows)
