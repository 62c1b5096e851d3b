"""Plain blocks of cell (DAG) spaces such as NAS-Bench-201, with no search knowledge.

Each family has a module and one ``*_params_macs`` function giving its parameters and
multiply-accumulates at an input of ``h x w`` pixels, with the conv and linear formulas of
``ops/blocks.py`` (:func:`~proxylessnas.ops.blocks.conv_params_macs`; BN, ReLU, pooling, sums and
zeros cost no MACs). Parameters: conv weights (+ bias where there is no affine BN after it), BN
weight and bias when affine (running statistics are buffers), linear weight and bias. Pooling,
the identity and zeros have no formula: they cost (0, 0).

Details follow NAS-Bench-201 (Dong & Yang, ICLR 2020; D-X-Y/AutoDL-Projects,
xautodl/models/cell_operations.py and cell_infers/tiny_network.py): ReLU is not in place (a node
feeds several edges), a conv has a bias only where its BN is not affine (the benchmark's
``bias=not affine``), the standalone nets use affine BN with running statistics, and weights keep
PyTorch's default initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from proxylessnas.ops.blocks import classifier_params_macs, conv_params_macs, out_side


class ReLUConvBN(nn.Sequential):
    """ReLU -> kxk conv (stride s, padding k // 2) -> BN; submodules ``relu``, ``conv``, ``bn``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, *,
                 affine: bool = True, track_running_stats: bool = True, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=not affine)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum, affine=affine,
                                 track_running_stats=track_running_stats)


def relu_conv_bn_params_macs(in_chs: int, out_chs: int, kernel_size: int, stride: int, h: int, w: int,
                             affine: bool = True) -> tuple[int, int]:
    """params = k^2 C_in C_out + (2 C_out if affine else C_out); MACs = k^2 C_in C_out H_out W_out."""
    weights, macs = conv_params_macs(in_chs, out_chs, kernel_size, stride, h, w)
    return weights + (2 * out_chs if affine else out_chs), macs


class ConvBN(nn.Sequential):
    """kxk conv (no bias) -> BN, no activation (NAS-Bench-201's stem); submodules ``conv``, ``bn``."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, *,
                 affine: bool = True, track_running_stats: bool = True, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum, affine=affine,
                                 track_running_stats=track_running_stats)


def conv_bn_params_macs(in_chs: int, out_chs: int, kernel_size: int, stride: int, h: int, w: int,
                        affine: bool = True) -> tuple[int, int]:
    """params = k^2 C_in C_out + 2 C_out (affine BN); MACs = k^2 C_in C_out H_out W_out."""
    weights, macs = conv_params_macs(in_chs, out_chs, kernel_size, stride, h, w)
    return weights + (2 * out_chs if affine else 0), macs


def avg_pool(kernel_size: int = 3, stride: int = 1) -> nn.AvgPool2d:
    """kxk average pool, padding k // 2, padded pixels not counted (``count_include_pad=False``)."""
    return nn.AvgPool2d(kernel_size, stride, kernel_size // 2, count_include_pad=False)


class Identity(nn.Identity):
    """``skip_connect``: returns its input."""


class Zero(nn.Module):
    """``none``/``zero``: zeros of the output shape (B, C_out, ceil(H / s), ceil(W / s))."""

    def __init__(self, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.out_chs = out_chs
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.out_chs, out_side(x.shape[2], self.stride),
                           out_side(x.shape[3], self.stride))

    def extra_repr(self) -> str:
        return f"out_chs={self.out_chs}, stride={self.stride}"


class ResBlock(nn.Module):
    """ResNet basic block: ``shortcut(x) + conv_b(conv_a(x))``, no ReLU after the sum.

    ``conv_a``: ReLU-Conv kxk (stride s)-BN, ``conv_b``: ReLU-Conv kxk-BN. ``shortcut``: where
    s = 2, 2x2 average pool (stride 2) -> 1x1 conv without bias and without BN; where s = 1 and
    C_in != C_out, ReLU-Conv 1x1-BN; else the identity (``None``). With s = 2 the input side
    must be even (the pooled shortcut floors, the conv ceils)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 2, *,
                 affine: bool = True, track_running_stats: bool = True, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ResBlock takes stride 1 or 2, not {stride}")
        bn = {"affine": affine, "track_running_stats": track_running_stats,
              "bn_momentum": bn_momentum, "bn_eps": bn_eps}
        self.conv_a = ReLUConvBN(in_chs, out_chs, kernel_size, stride, **bn)
        self.conv_b = ReLUConvBN(out_chs, out_chs, kernel_size, 1, **bn)
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2, 0),
                                          nn.Conv2d(in_chs, out_chs, 1, bias=False))
        elif in_chs != out_chs:
            self.shortcut = ReLUConvBN(in_chs, out_chs, 1, 1, **bn)
        else:
            self.shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return residual + self.conv_b(self.conv_a(x))


def res_block_params_macs(in_chs: int, out_chs: int, kernel_size: int, stride: int, h: int, w: int,
                          affine: bool = True) -> tuple[int, int]:
    """conv_a at (h, w) + conv_b at the output side + the shortcut (1x1 conv at the output side)."""
    pa, ma = relu_conv_bn_params_macs(in_chs, out_chs, kernel_size, stride, h, w, affine)
    oh, ow = out_side(h, stride), out_side(w, stride)
    pb, mb = relu_conv_bn_params_macs(out_chs, out_chs, kernel_size, 1, oh, ow, affine)
    if stride == 2:  # the 2x2 pool floors: the 1x1 conv sees (h // 2) x (w // 2)
        ps, ms = conv_params_macs(in_chs, out_chs, 1, 1, h // 2, w // 2)
    elif in_chs != out_chs:
        ps, ms = relu_conv_bn_params_macs(in_chs, out_chs, 1, 1, h, w, affine)
    else:
        ps, ms = 0, 0
    return pa + pb + ps, ma + mb + ms


class PoolHead(nn.Module):
    """BN -> ReLU (when ``bn_relu``) -> global average pool -> dropout -> linear (with bias).

    Submodules ``bn`` (or None), ``dropout``, ``linear``."""

    def __init__(self, in_chs: int, num_classes: int, bn_relu: bool = True, dropout: float = 0.0, *,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_chs, eps=bn_eps, momentum=bn_momentum) if bn_relu else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn is not None:
            x = torch.relu(self.bn(x))
        return self.linear(self.dropout(x.mean((2, 3))))


def pool_head_params_macs(in_chs: int, num_classes: int, bn_relu: bool = True) -> tuple[int, int]:
    """params = 2 C (BN, when ``bn_relu``) + the classifier's C * classes + classes; MACs = C * classes."""
    params, macs = classifier_params_macs(in_chs, num_classes)
    return params + (2 * in_chs if bn_relu else 0), macs

