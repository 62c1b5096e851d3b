"""Per-layer parameters and multiply-accumulates of a standalone net, counted analytically.

``profile_net`` / ``count_params_macs`` take a chain's ``NetConfig`` or a graph net's
``GraphNetConfig`` (``nets/graph_net.py``: one row per edge, then the head).

Conv: MACs = k * k * (C_in / groups) * C_out * H_out * W_out; linear: C_in * C_out.
Parameters count conv, BN (weight and bias) and linear weights; BN running statistics are
buffers, not parameters. The test suite cross-checks both counts against torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

from proxylessnas.nets.config import NetConfig
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


def _conv(h: int, w: int, c_in: int, c_out: int, k: int, stride: int, groups: int = 1,
          bn: bool = True) -> tuple[int, int, int, int]:
    """(params, macs, out_h, out_w) of conv (+ BN)."""
    oh, ow = conv_output_size(h, stride), conv_output_size(w, stride)
    weights = k * k * (c_in // groups) * c_out
    return weights + (2 * c_out if bn else 0), weights * oh * ow, oh, ow


@singledispatch
def profile_net(config, resolution: int | None = None) -> list[LayerProfile]:
    """Per-layer rows of a net config (a graph net's is registered in ``nets/graph_net.py``)."""
    raise TypeError(f"no profile for {type(config).__name__}")


@profile_net.register
def _profile_chain(config: NetConfig, resolution: int | None = None) -> list[LayerProfile]:
    """One row for the stem, each block, the head and the classifier."""
    side = resolution or config.resolution
    rows: list[LayerProfile] = []
    p, m, h, w = _conv(side, side, config.in_chs, config.stem_chs, config.stem_kernel,
                       config.stem_stride)
    rows.append(LayerProfile("stem", f"conv_k{config.stem_kernel}", Shape(side, side, config.in_chs),
                             Shape(h, w, config.stem_chs), p, m))
    for b in config.blocks:
        mid = b.in_chs * b.expand_ratio
        params = macs = 0
        hh, ww = h, w
        if b.expand_ratio > 1:
            p, m, hh, ww = _conv(hh, ww, b.in_chs, mid, 1, 1)
            params, macs = params + p, macs + m
        p, m, hh, ww = _conv(hh, ww, mid, mid, b.kernel_size, b.stride, groups=mid)
        params, macs = params + p, macs + m
        p, m, hh, ww = _conv(hh, ww, mid, b.out_chs, 1, 1)
        params, macs = params + p, macs + m
        rows.append(LayerProfile(b.label, b.op.token, Shape(h, w, b.in_chs),
                                 Shape(hh, ww, b.out_chs), params, macs, b.residual))
        h, w = hh, ww
    p, m, h2, w2 = _conv(h, w, config.feature_chs, config.head_chs, 1, 1)
    rows.append(LayerProfile("head", "conv_k1", Shape(h, w, config.feature_chs),
                             Shape(h2, w2, config.head_chs), p, m))
    linear = config.head_chs * config.num_classes
    rows.append(LayerProfile("classifier", "pool_linear", Shape(h2, w2, config.head_chs),
                             Shape(1, 1, config.num_classes), linear + config.num_classes, linear))
    return rows


def count_params_macs(config, resolution: int | None = None) -> tuple[int, int]:
    rows = profile_net(config, resolution)
    return sum(r.params for r in rows), sum(r.macs for r in rows)
