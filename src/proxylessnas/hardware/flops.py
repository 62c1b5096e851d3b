"""Multiply-accumulates and parameters of one :class:`LayerKey`, counted analytically.

Same rules as :mod:`proxylessnas.nets.profile`: conv MACs = k * k * (C_in / groups) * C_out *
H_out * W_out, linear MACs = C_in * C_out; BN adds 2 * C parameters and no MACs; the residual
add and the global pooling are not counted. Graph-space keys (``nor_conv``, ``avg_pool``, ``skip``,
``conv_bn``, ``res_block``, ``pool_head``) are counted by the graph net's op registry
(:func:`~proxylessnas.nets.graph_net.op_params_macs`), so they agree with its profile.
"""

from __future__ import annotations

from proxylessnas.hardware.keys import GRAPH_KINDS, LayerKey, key_op


def _conv(c_in: int, c_out: int, kernel: int, out_hw: int, groups: int = 1) -> tuple[int, int]:
    weights = kernel * kernel * (c_in // groups) * c_out
    return weights + 2 * c_out, weights * out_hw


def key_params_macs(key: LayerKey) -> tuple[int, int]:
    """(parameters, MACs) of the block a key describes."""
    (ih, iw, ic), (oh, ow, oc) = key.input, key.output
    if key.kind == "pool_head":
        from proxylessnas.ops.cell_blocks import pool_head_params_macs

        return pool_head_params_macs(ic, oc, True)
    if key.kind in GRAPH_KINDS:
        from proxylessnas.nets.graph_net import op_params_macs

        return op_params_macs(key_op(key), ic, oc, key.stride, ih, iw)
    if key.kind == "classifier":
        return ic * oc + oc, ic * oc
    if key.kind in ("stem", "head"):
        return _conv(ic, oc, key.kernel_size, oh * ow)
    mid = ic * key.expand_ratio
    params = macs = 0
    if key.expand_ratio > 1:
        p, m = _conv(ic, mid, 1, ih * iw)
        params, macs = params + p, macs + m
    p, m = _conv(mid, mid, key.kernel_size, oh * ow, groups=mid)
    params, macs = params + p, macs + m
    p, m = _conv(mid, oc, 1, oh * ow)
    return params + p, macs + m
