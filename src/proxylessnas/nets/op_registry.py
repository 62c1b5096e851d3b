"""The op registry: what each op family knows, in one place.

One :class:`OpFamily` per family, looked up by the op spec's type (``space/ops.py``). It builds
the family's module (``ops/``), counts its parameters and multiply-accumulates at an ``h x w``
input (with the formula beside that module, as ``torch.utils.flop_counter`` counts: convs and
linears; BN, activations, pooling and sums are free), and names its latency-table key: the
fields ``(kind, kernel, expand)`` that ``hardware/keys.py`` completes with the shapes, the stride
and the shortcut, and back from them to the op.

======================  ==============================  ===========================  ==============
family                  ops                             module                       key kind
======================  ==============================  ===========================  ==============
MBConv                  ``mb_k<k>_e<e>``                ``MBConv`` (no shortcut)     ``mbconv``
zero                    ``zero``, ``none``              ``Zero``                     none: costs 0
identity                ``skip_connect``                ``Identity``                 ``skip``
ReLU-Conv-BN            ``nor_conv_kxk``                ``ReLUConvBN``               ``nor_conv``
conv + BN               ``conv_bn_kxk``                 ``ConvBN``                   ``conv_bn``
residual reduction      ``res_block_kxk``               ``ResBlock``                 ``res_block``
average pool            ``avg_pool_kxk``                ``nn.AvgPool2d``             ``avg_pool``
stem, head conv         ``StemOp``, ``HeadConvOp``      ``ConvBNAct``                ``stem``, ``head``
classifier              ``ClassifierOp``                ``Classifier``               ``classifier``
pooling head            ``PoolHeadOp``                  ``PoolHead``                 ``pool_head``
separable conv          ``{sep,dil}_conv_kxk``          ``SepConv``                  ``{sep,dil}_conv``
max pool                ``max_pool_kxk``                ``nn.MaxPool2d``             ``max_pool``
pre-activation conv     ``bn[_relu]_conv_kxk[_gG]``     ``PreConv``                  ``bn[_relu]_conv``
BatchNorm               ``bn``                          ``nn.BatchNorm2d``           ``bn``
channel slice           ``chunk_<i>``                   ``ChannelChunk``             ``chunk``
PyramidNet shortcut     ``pad_skip``                    ``PadSkip``                  ``pad_skip``
======================  ==============================  ===========================  ==============

The tree cell's families (``ops/tree_blocks.py``): a pre-activation conv's key carries its
groups in the ``expand`` field; every ``chunk_<i>`` shares the key of ``chunk_0`` (slicing costs
the same whichever slice).

A pooling head without BN-ReLU is keyed ``classifier`` (the same computation). Modules keep
PyTorch's default initialisation; the chain's nets apply the paper's afterwards
(``ops.blocks.init_weights``). Nets, supernets, profiles, cost models and timed blocks all build
and count through :func:`build_op` and :func:`op_params_macs`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.ops.blocks import (
    Classifier,
    ConvBNAct,
    MBConv,
    classifier_params_macs,
    conv_bn_act_params_macs,
    mbconv_params_macs,
)
from proxylessnas.ops.cell_blocks import (
    ConvBN,
    Identity,
    PoolHead,
    ReLUConvBN,
    ResBlock,
    Zero,
    avg_pool,
    conv_bn_params_macs,
    pool_head_params_macs,
    relu_conv_bn_params_macs,
    res_block_params_macs,
)
from proxylessnas.ops.tree_blocks import (
    ChannelChunk,
    PadSkip,
    PreConv,
    SepConv,
    max_pool,
    pre_conv_params_macs,
    sep_conv_params_macs,
)
from proxylessnas.space.ops import (
    HEAD_CONV,
    SKIP,
    AvgPoolOp,
    BNOp,
    ChunkOp,
    ClassifierOp,
    ConvBNOp,
    DilConvOp,
    HeadConvOp,
    MaxPoolOp,
    MBConvOp,
    NoneOp,
    PadSkipOp,
    PoolHeadOp,
    PreConvOp,
    ReLUConvBNOp,
    ResBlockOp,
    SepConvOp,
    SkipOp,
    StemOp,
    ZeroOp,
)
from proxylessnas.space.spec import BNSpec

DEFAULT_BN = BNSpec(momentum=0.1, eps=1e-5)
KEY_KINDS = ("stem", "mbconv", "head", "classifier", "conv_bn", "res_block", "nor_conv", "avg_pool",
             "skip", "pool_head", "sep_conv", "dil_conv", "max_pool", "bn_conv", "bn_relu_conv", "bn",
             "chunk", "pad_skip")
"""Every kind a latency key may have, in the order tables sort their keys."""
KeyFields = tuple[str, int, int]


class OpFamily:
    """One family: ``build`` its module, ``params_macs`` its cost, ``key`` / ``from_key`` its key
    fields. The defaults are a free op without key (the zero family overrides only ``build``)."""

    kinds: tuple[str, ...] = ()

    def build(self, op, in_chs: int, out_chs: int, stride: int, bn: BNSpec, affine: bool,
              track_running_stats: bool) -> nn.Module:
        raise NotImplementedError

    def params_macs(self, op, in_chs: int, out_chs: int, stride: int, h: int, w: int,
                    affine: bool) -> tuple[int, int]:
        return 0, 0

    def key(self, op) -> KeyFields | None:
        return None

    def from_key(self, kind: str, kernel: int, expand: int):
        raise NotImplementedError


class MBConvFamily(OpFamily):
    """``mb_k<k>_e<e>``: the MBConv body (a chain layer adds its shortcut); key (k, e)."""

    kinds = ("mbconv",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return MBConv(in_chs, out_chs, op.kernel_size, stride, op.expand_ratio, bn.momentum, bn.eps)

    def params_macs(self, op, in_chs, out_chs, stride, h, w, affine):
        return mbconv_params_macs(in_chs, out_chs, op.kernel_size, stride, op.expand_ratio, h, w)

    def key(self, op):
        return "mbconv", op.kernel_size, op.expand_ratio

    def from_key(self, kind, kernel, expand):
        return MBConvOp(kernel, expand)


class ZeroFamily(OpFamily):
    """``zero`` / ``none``: zeros of the output shape; free, no key (costs 0 by definition)."""

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return Zero(out_chs, stride)


class IdentityFamily(OpFamily):
    """``skip_connect``: the identity; free, but timed (the backend's per-call overhead)."""

    kinds = ("skip",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return Identity()

    def key(self, op):
        return "skip", 1, 1

    def from_key(self, kind, kernel, expand):
        return SKIP


class AvgPoolFamily(OpFamily):
    """``avg_pool_kxk``: padding k // 2, padded pixels not counted; free."""

    kinds = ("avg_pool",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return avg_pool(op.kernel_size, stride)

    def key(self, op):
        return "avg_pool", op.kernel_size, 1

    def from_key(self, kind, kernel, expand):
        return AvgPoolOp(kernel)


class ConvBNBlockFamily(OpFamily):
    """Cell and skeleton blocks of convs with BN (``nor_conv``, ``conv_bn``, ``res_block``): one
    constructor signature; ``affine`` / ``track_running_stats`` configure their BNs."""

    def __init__(self, kind: str, op_type: type, module: type[nn.Module],
                 formula: Callable[..., tuple[int, int]]) -> None:
        self.kinds = (kind,)
        self.op_type, self.module, self.formula = op_type, module, formula

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return self.module(in_chs, out_chs, op.kernel_size, stride, affine=affine,
                           track_running_stats=track_running_stats, bn_momentum=bn.momentum, bn_eps=bn.eps)

    def params_macs(self, op, in_chs, out_chs, stride, h, w, affine):
        return self.formula(in_chs, out_chs, op.kernel_size, stride, h, w, affine)

    def key(self, op):
        return self.kinds[0], op.kernel_size, 1

    def from_key(self, kind, kernel, expand):
        return self.op_type(kernel)


class ConvBNActFamily(OpFamily):
    """A chain's stem (kxk) and head conv (1x1): conv + BN + ReLU6."""

    def __init__(self, kind: str, make: Callable[[int], object]) -> None:
        self.kinds = (kind,)
        self.make = make

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return ConvBNAct(in_chs, out_chs, op.kernel_size, stride, bn_momentum=bn.momentum, bn_eps=bn.eps)

    def params_macs(self, op, in_chs, out_chs, stride, h, w, affine):
        return conv_bn_act_params_macs(in_chs, out_chs, op.kernel_size, stride, h, w)

    def key(self, op):
        return self.kinds[0], op.kernel_size, 1

    def from_key(self, kind, kernel, expand):
        return self.make(kernel)


class ClassifierFamily(OpFamily):
    """A chain's classifier ``C -> classes`` (out_chs is the number of classes)."""

    kinds = ("classifier",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return Classifier(in_chs, out_chs, op.dropout)

    def params_macs(self, op, in_chs, out_chs, stride, h, w, affine):
        return classifier_params_macs(in_chs, out_chs)

    def key(self, op):
        return "classifier", 1, 1

    def from_key(self, kind, kernel, expand):
        return ClassifierOp()


class PoolHeadFamily(OpFamily):
    """A graph space's head ``C -> classes``; keyed ``classifier`` without its BN-ReLU."""

    kinds = ("pool_head",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return PoolHead(in_chs, out_chs, op.bn_relu, op.dropout, bn_momentum=bn.momentum, bn_eps=bn.eps)

    def params_macs(self, op, in_chs, out_chs, stride, h, w, affine):
        return pool_head_params_macs(in_chs, out_chs, op.bn_relu)

    def key(self, op):
        return ("pool_head" if op.bn_relu else "classifier"), 1, 1

    def from_key(self, kind, kernel, expand):
        return PoolHeadOp(True)


class SepConvFamily(OpFamily):
    """``sep_conv_kxk`` / ``dil_conv_kxk``: BN-ReLU-depthwise-pointwise; key (k, 1)."""

    kinds = ("sep_conv", "dil_conv")

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return SepConv(in_chs, out_chs, op.kernel_size, stride, dilation=op.dilation, affine=affine,
                       track_running_stats=track_running_stats, bn_momentum=bn.momentum, bn_eps=bn.eps)

    def params_macs(self, op, in_chs, out_chs, stride, h, w, affine):
        return sep_conv_params_macs(in_chs, out_chs, op.kernel_size, stride, h, w, affine)

    def key(self, op):
        return op.prefix, op.kernel_size, 1

    def from_key(self, kind, kernel, expand):
        return SepConvOp(kernel) if kind == "sep_conv" else DilConvOp(kernel)


class MaxPoolFamily(OpFamily):
    """``max_pool_kxk``: padding k // 2; free."""

    kinds = ("max_pool",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return max_pool(op.kernel_size, stride)

    def key(self, op):
        return "max_pool", op.kernel_size, 1

    def from_key(self, kind, kernel, expand):
        return MaxPoolOp(kernel)


class PreConvFamily(OpFamily):
    """``bn[_relu]_conv_kxk[_g<G>]``: BN-(ReLU)-conv (-shuffle); key (k, groups)."""

    kinds = ("bn_conv", "bn_relu_conv")

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return PreConv(in_chs, out_chs, op.kernel_size, stride, relu=op.relu, groups=op.groups, affine=affine,
                       track_running_stats=track_running_stats, bn_momentum=bn.momentum, bn_eps=bn.eps)

    def params_macs(self, op, in_chs, out_chs, stride, h, w, affine):
        return pre_conv_params_macs(in_chs, out_chs, op.kernel_size, stride, h, w, op.groups, affine)

    def key(self, op):
        return ("bn_relu_conv" if op.relu else "bn_conv"), op.kernel_size, op.groups

    def from_key(self, kind, kernel, expand):
        return PreConvOp(kernel, kind == "bn_relu_conv", expand)


class BNFamily(OpFamily):
    """``bn``: ``nn.BatchNorm2d(C)``; 2 C parameters when affine, no MACs."""

    kinds = ("bn",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return nn.BatchNorm2d(out_chs, eps=bn.eps, momentum=bn.momentum, affine=affine,
                              track_running_stats=track_running_stats)

    def params_macs(self, op, in_chs, out_chs, stride, h, w, affine):
        return (2 * out_chs if affine else 0), 0

    def key(self, op):
        return "bn", 1, 1

    def from_key(self, kind, kernel, expand):
        return BNOp()


class ChunkFamily(OpFamily):
    """``chunk_<i>``: a slice of the input's channels; free."""

    kinds = ("chunk",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return ChannelChunk(op.index, out_chs)

    def key(self, op):
        return "chunk", 1, 1

    def from_key(self, kind, kernel, expand):
        return ChunkOp(0)


class PadSkipFamily(OpFamily):
    """``pad_skip``: (2x2 average pool,) zero channels appended; free."""

    kinds = ("pad_skip",)

    def build(self, op, in_chs, out_chs, stride, bn, affine, track_running_stats):
        return PadSkip(in_chs, out_chs, stride)

    def key(self, op):
        return "pad_skip", 1, 1

    def from_key(self, kind, kernel, expand):
        return PadSkipOp()


_FAMILIES: dict[type, OpFamily] = {
    MBConvOp: MBConvFamily(),
    ZeroOp: ZeroFamily(), NoneOp: ZeroFamily(),
    SkipOp: IdentityFamily(),
    AvgPoolOp: AvgPoolFamily(),
    ReLUConvBNOp: ConvBNBlockFamily("nor_conv", ReLUConvBNOp, ReLUConvBN, relu_conv_bn_params_macs),
    ConvBNOp: ConvBNBlockFamily("conv_bn", ConvBNOp, ConvBN, conv_bn_params_macs),
    ResBlockOp: ConvBNBlockFamily("res_block", ResBlockOp, ResBlock, res_block_params_macs),
    StemOp: ConvBNActFamily("stem", StemOp),
    HeadConvOp: ConvBNActFamily("head", lambda _kernel: HEAD_CONV),
    ClassifierOp: ClassifierFamily(),
    PoolHeadOp: PoolHeadFamily(),
    SepConvOp: SepConvFamily(), DilConvOp: SepConvFamily(),
    MaxPoolOp: MaxPoolFamily(),
    PreConvOp: PreConvFamily(),
    BNOp: BNFamily(),
    ChunkOp: ChunkFamily(),
    PadSkipOp: PadSkipFamily(),
}
_KIND_FAMILIES = {kind: family for family in _FAMILIES.values() for kind in family.kinds}


def op_family(op) -> OpFamily:
    """The family of ``op`` (by its type)."""
    family = _FAMILIES.get(type(op))
    if family is None:
        raise ProxylessError(f"op '{getattr(op, 'token', op)}' has no op family", "op registry",
                             "use a chain, cell or skeleton op (space/ops.py)")
    return family


def build_op(op, in_chs: int, out_chs: int, stride: int, bn: BNSpec = DEFAULT_BN, *, affine: bool = True,
             track_running_stats: bool = True) -> nn.Module:
    """The module of ``op`` taking ``in_chs`` to ``out_chs`` channels at ``stride``.

    ``affine``/``track_running_stats`` configure the BNs of the cell ops (a supernet may turn
    them off as the benchmark's search nets do; a conv then gets a bias)."""
    return op_family(op).build(op, in_chs, out_chs, stride, bn, affine, track_running_stats)


def op_params_macs(op, in_chs: int, out_chs: int, stride: int, h: int, w: int,
                   affine: bool = True) -> tuple[int, int]:
    """(parameters, MACs) of :func:`build_op`'s module at an ``h x w`` input."""
    return op_family(op).params_macs(op, in_chs, out_chs, stride, h, w, affine)


def op_key_fields(op) -> KeyFields | None:
    """``(kind, kernel, expand)`` of ``op``'s latency key; ``None`` for an op that costs 0 (zero)."""
    return op_family(op).key(op)


def op_from_key(kind: str, kernel: int = 1, expand: int = 1):
    """The op whose key fields are these (the inverse of :func:`op_key_fields`)."""
    family = _KIND_FAMILIES.get(kind)
    if family is None:
        raise ProxylessError(f"unknown layer kind '{kind}'", "latency key",
                             f"use one of {', '.join(KEY_KINDS)}")
    return family.from_key(kind, kernel, expand)
