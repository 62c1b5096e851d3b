"""Multiply-accumulates and parameters of one :class:`LayerKey`, counted analytically.

A key counts as its op does in a net's profile: the op registry's count
(:func:`~proxylessnas.nets.op_registry.op_params_macs`) of the key's op
(:func:`~proxylessnas.hardware.keys.key_op`) at the key's input, ``C_in -> C_out`` at its stride.
Conv MACs = k * k * (C_in / groups) * C_out * H_out * W_out, linear MACs = C_in * C_out; BN adds
2 * C parameters and no MACs; the residual add, pooling and node sums are not counted.
"""

from __future__ import annotations

from proxylessnas.hardware.keys import LayerKey, key_op
from proxylessnas.nets.op_registry import op_params_macs


def key_params_macs(key: LayerKey) -> tuple[int, int]:
    """(parameters, MACs) of the block a key describes."""
    (ih, iw, ic), (_, _, oc) = key.input, key.output
    return op_params_macs(key_op(key), ic, oc, key.stride, ih, iw)
