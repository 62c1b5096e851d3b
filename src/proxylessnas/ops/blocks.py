"""Plain building blocks with no search knowledge.

MBConv (inverted residual, MobileNetV2): 1x1 expand conv + BN + ReLU6 (only if expand > 1),
kxk depthwise conv (stride s, padding k // 2) + BN + ReLU6, 1x1 projection + BN.
Each block has one ``*_params_macs`` function beside it (the op registry,
``nets/op_registry.py``, counts through them), counted as ``torch.utils.flop_counter`` counts
(FLOPs = 2 * MACs): conv MACs = k * k * (C_in / groups) * C_out * H_out * W_out, linear MACs =
C_in * C_out; BN adds 2 * C parameters (weight, bias) and no MACs; activations, pooling and sums
are free. A 'same'-padded odd kernel of stride s maps n pixels to ``(n - 1) // s + 1``.
Initialisation (the paper's release): conv weights N(0, sqrt(2 / (k * k * out_channels))),
BN weight 1 and bias 0, linear weights U(-1/sqrt(in), 1/sqrt(in)) and bias 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90% of it."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def out_side(n: int, stride: int) -> int:
    """Output side of a 'same'-padded odd-kernel conv or pool: ``(n - 1) // s + 1`` (= ceil(n / s))."""
    return (n - 1) // stride + 1


def conv_params_macs(in_chs: int, out_chs: int, kernel_size: int, stride: int, h: int, w: int,
                     groups: int = 1) -> tuple[int, int]:
    """A conv without bias at an ``h x w`` input: params = k^2 (C_in / g) C_out, MACs = params H_out W_out."""
    weights = kernel_size * kernel_size * (in_chs // groups) * out_chs
    return weights, weights * out_side(h, stride) * out_side(w, stride)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional ReLU6; submodules ``conv``, ``bn``, ``act``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1, act: bool = True, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum)
        if act:
            self.act = nn.ReLU6(inplace=True)


def conv_bn_act_params_macs(in_chs: int, out_chs: int, kernel_size: int, stride: int, h: int, w: int,
                            groups: int = 1) -> tuple[int, int]:
    """:class:`ConvBNAct`: the conv's, plus 2 C_out BN parameters."""
    params, macs = conv_params_macs(in_chs, out_chs, kernel_size, stride, h, w, groups)
    return params + 2 * out_chs, macs


class MBConv(nn.Module):
    """Inverted-residual conv body (no shortcut): ``expand`` (optional), ``depthwise``, ``project``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int,
                 expand_ratio: int, bn_momentum: float = 0.1, bn_eps: float = 1e-3) -> None:
        super().__init__()
        bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        mid = in_chs * expand_ratio
        self.expand = ConvBNAct(in_chs, mid, 1, **bn) if expand_ratio > 1 else None
        self.depthwise = ConvBNAct(mid, mid, kernel_size, stride, groups=mid, **bn)
        self.project = ConvBNAct(mid, out_chs, 1, act=False, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.expand is not None:
            x = self.expand(x)
        return self.project(self.depthwise(x))


def mbconv_params_macs(in_chs: int, out_chs: int, kernel_size: int, stride: int, expand_ratio: int,
                       h: int, w: int) -> tuple[int, int]:
    """:class:`MBConv`, mid = e C_in: 1x1 expand (e > 1) at h x w + kxk depthwise (groups mid,
    stride s) + 1x1 project at the output side, each a :class:`ConvBNAct`."""
    mid = in_chs * expand_ratio
    parts = [conv_bn_act_params_macs(in_chs, mid, 1, 1, h, w)] if expand_ratio > 1 else []
    parts.append(conv_bn_act_params_macs(mid, mid, kernel_size, stride, h, w, groups=mid))
    parts.append(conv_bn_act_params_macs(mid, out_chs, 1, 1, out_side(h, stride), out_side(w, stride)))
    return sum(p for p, _ in parts), sum(m for _, m in parts)


class Residual(nn.Module):
    """``x + body(x)`` when ``shortcut`` else ``body(x)``."""

    def __init__(self, body: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.shortcut else out

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}"


class Classifier(nn.Module):
    """Global average pool, dropout, linear."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x.mean((2, 3))))


def classifier_params_macs(in_chs: int, num_classes: int) -> tuple[int, int]:
    """:class:`Classifier`: params = C * classes + classes, MACs = C * classes (pooling free)."""
    return in_chs * num_classes + num_classes, in_chs * num_classes


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation (He, fan-out) for every conv, BN and linear in ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
