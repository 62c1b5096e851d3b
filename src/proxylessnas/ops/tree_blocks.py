"""Plain blocks of the tree cell on a PyramidNet backbone (the paper's CIFAR-10 model), with no
search knowledge.

Every conv block keeps the pre-activation order of that model, BN -> ReLU -> weight: the BN
normalises the block's *input* (``C_in`` channels). Counting as ``ops/blocks.py`` (convs only;
BN adds 2 C parameters when affine, no MACs; pooling, slicing, padding and shuffles are free):

- :class:`PreConv` ``bn[_relu]_conv_kxk[_g<G>]``: params = 2 C_in + k^2 (C_in / G) C_out,
  MACs = k^2 (C_in / G) C_out H_out W_out;
- :class:`SepConv` ``sep_conv_kxk`` / ``dil_conv_kxk``: params = 2 C_in + k^2 C_in + C_in C_out,
  MACs = (k^2 C_in + C_in C_out) H_out W_out (dilation changes neither);
- :class:`ChannelChunk`, :class:`PadSkip`, max pooling: free.

Convs have no bias and 'same' padding ``dilation * (k // 2)``; ReLU is not in place (a node feeds
several edges). Weights keep PyTorch's default initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from proxylessnas.ops.blocks import conv_params_macs, out_side


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's shuffle: channel ``g * (C / G) + i`` moves to ``i * G + g``."""
    batch, chs, height, width = x.shape
    return x.view(batch, groups, chs // groups, height, width).transpose(1, 2).reshape(
        batch, chs, height, width)


def _bn(chs: int, affine: bool, track_running_stats: bool, momentum: float, eps: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(chs, eps=eps, momentum=momentum, affine=affine,
                          track_running_stats=track_running_stats)


class PreConv(nn.Module):
    """BN(C_in) -> ReLU (when ``relu``) -> kxk conv with ``groups`` (stride s) -> channel shuffle
    (when ``groups > 1``); submodules ``bn``, ``conv``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, *,
                 relu: bool = True, groups: int = 1, affine: bool = True, track_running_stats: bool = True,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.relu, self.groups = relu, groups
        self.bn = _bn(in_chs, affine, track_running_stats, bn_momentum, bn_eps)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups,
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x)
        if self.relu:
            x = torch.relu(x)
        x = self.conv(x)
        return channel_shuffle(x, self.groups) if self.groups > 1 else x


def pre_conv_params_macs(in_chs: int, out_chs: int, kernel_size: int, stride: int, h: int, w: int,
                         groups: int = 1, affine: bool = True) -> tuple[int, int]:
    """params = 2 C_in (affine BN) + k^2 (C_in / G) C_out; MACs = k^2 (C_in / G) C_out H_out W_out."""
    weights, macs = conv_params_macs(in_chs, out_chs, kernel_size, stride, h, w, groups)
    return weights + (2 * in_chs if affine else 0), macs


class SepConv(nn.Module):
    """BN(C_in) -> ReLU -> kxk depthwise conv (stride s, ``dilation``) -> 1x1 conv to C_out;
    submodules ``bn``, ``depthwise``, ``pointwise``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, *,
                 dilation: int = 1, affine: bool = True, track_running_stats: bool = True,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.bn = _bn(in_chs, affine, track_running_stats, bn_momentum, bn_eps)
        self.depthwise = nn.Conv2d(in_chs, in_chs, kernel_size, stride, dilation * (kernel_size // 2),
                                   dilation=dilation, groups=in_chs, bias=False)
        self.pointwise = nn.Conv2d(in_chs, out_chs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(torch.relu(self.bn(x))))


def sep_conv_params_macs(in_chs: int, out_chs: int, kernel_size: int, stride: int, h: int, w: int,
                         affine: bool = True) -> tuple[int, int]:
    """params = 2 C_in + k^2 C_in + C_in C_out; MACs = (k^2 C_in + C_in C_out) H_out W_out."""
    depthwise, dw_macs = conv_params_macs(in_chs, in_chs, kernel_size, stride, h, w, in_chs)
    pointwise, pw_macs = conv_params_macs(in_chs, out_chs, 1, 1, out_side(h, stride), out_side(w, stride))
    return depthwise + pointwise + (2 * in_chs if affine else 0), dw_macs + pw_macs


def max_pool(kernel_size: int = 3, stride: int = 1) -> nn.MaxPool2d:
    """kxk max pool, padding k // 2."""
    return nn.MaxPool2d(kernel_size, stride, kernel_size // 2)


class ChannelChunk(nn.Module):
    """Channels ``[index * chs, (index + 1) * chs)`` of the input (a split node's branch)."""

    def __init__(self, index: int, chs: int) -> None:
        super().__init__()
        self.index, self.chs = index, chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.index * self.chs:(self.index + 1) * self.chs]

    def extra_repr(self) -> str:
        return f"index={self.index}, chs={self.chs}"


class PadSkip(nn.Module):
    """PyramidNet's shortcut: 2x2 average pool (stride 2) where ``stride`` is 2, then
    ``out_chs - in_chs`` zero channels appended. The pool floors: an odd side loses a row."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2) or out_chs < in_chs:
            raise ValueError(f"PadSkip takes stride 1 or 2 and out >= in channels, not {stride}, "
                             f"{in_chs} -> {out_chs}")
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = nn.functional.avg_pool2d(x, 2, 2)
        if self.out_chs == self.in_chs:
            return x
        pad = x.new_zeros(x.shape[0], self.out_chs - self.in_chs, x.shape[2], x.shape[3])
        return torch.cat((x, pad), 1)

    def extra_repr(self) -> str:
        return f"in_chs={self.in_chs}, out_chs={self.out_chs}, stride={self.stride}"
