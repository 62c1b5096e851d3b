"""Multiply-accumulates and parameters of one :class:`LayerKey`, counted analytically.

A key counts as its op does in a net's profile: the op registry's count
(:func:`~proxylessnas.nets.op_registry.op_params_macs`) of the key's op
(:func:`~proxylessnas.hardware.keys.key_op`) at the key's input, ``C_in -> C_out`` at its stride.
Conv MACs = k * k * (C_in / groups) * C_out * H_out * W_out, linear MACs = C_in * C_out; BN adds
2 * C parameters and no MACs; the residual add, pooling and node sums are not counted.

:func:`key_depthwise_convs` lists a block's depthwise convolutions (``groups == C_in == C_out``,
MACs = k * k * C * H_out * W_out), read from the built module itself, so every op family counts.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

from proxylessnas.hardware.keys import LayerKey, key_op
from proxylessnas.nets.op_registry import build_op, op_params_macs


def key_params_macs(key: LayerKey) -> tuple[int, int]:
    """(parameters, MACs) of the block a key describes."""
    (ih, iw, ic), (_, _, oc) = key.input, key.output
    return op_params_macs(key_op(key), ic, oc, key.stride, ih, iw)


@cache
def key_depthwise_convs(key: LayerKey) -> tuple[tuple[int, int], ...]:
    """``(channels, MACs)`` of each depthwise convolution in the block a key describes, found by
    running the block once at the key's input size (cached: a key always builds the same block)."""
    (ih, iw, ic), (_, _, oc) = key.input, key.output
    module = build_op(key_op(key), ic, oc, key.stride).eval()
    found: list[tuple[int, int]] = []

    def record(conv: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        kh, kw = conv.kernel_size
        found.append((conv.out_channels, kh * kw * conv.out_channels * output.shape[-2] * output.shape[-1]))

    hooks = [m.register_forward_hook(record) for m in module.modules()
             if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels]
    try:
        with torch.no_grad():
            module(torch.zeros(1, ic, ih, iw))
    finally:
        for hook in hooks:
            hook.remove()
    return tuple(found)
