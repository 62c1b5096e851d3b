"""Shared look (figures: proxylessnas.figures): one colour and one short label per op.

Chain ops (MBConv): hue by kernel size, shade by expand ratio, ``zero`` grey ("skip"). Cell ops
(NAS-Bench-201's, the tree cell's): hue by op family (conv blue, separable conv darker blue,
dilated conv purple, average pool orange, max pool brown, skip_connect green, none grey), shade
by kernel (smaller lighter). Fixed skeleton ops (stem, residual block, the tree cell's pre-activation
convs, BN, chunks, padded shortcuts): light grey.
Colour, label and the chain diagram's box width are dispatched on the op's class
(functools.singledispatch), so a new op type registers its own look here and every plot follows.
"""

from __future__ import annotations

from functools import singledispatch

from matplotlib.colors import to_rgb

from proxylessnas.space import (
    AvgPoolOp,
    BNOp,
    ChunkOp,
    ConvBNOp,
    DilConvOp,
    MaxPoolOp,
    MBConvOp,
    NoneOp,
    OpSpec,
    PadSkipOp,
    PreConvOp,
    ReLUConvBNOp,
    ResBlockOp,
    SepConvOp,
    SkipOp,
    ZeroOp,
)

RGB = tuple[float, float, float]
KERNEL_COLOURS = {1: "#9e9e9e", 3: "#4c9be8", 5: "#f0a830", 7: "#e0524d", 9: "#8e5cc4"}
ZERO_COLOUR = "#d9d9d9"
FIXED_COLOUR = "#eeeeee"
FAMILY_COLOURS = {"nor_conv": "#4c9be8", "avg_pool": "#f0a830", "skip_connect": "#5aa469",
                  "none": ZERO_COLOUR, "sep_conv": "#3f6fc1", "dil_conv": "#8e5cc4", "max_pool": "#b5651d"}
"""Cell-op families (the tokens' prefixes)."""


def kernel_colour(kernel_size: int) -> str:
    return KERNEL_COLOURS.get(kernel_size, "#5aa469")


def _shade(colour: str, mix: float) -> RGB:
    """``mix`` > 0 toward white, < 0 toward black (clipped to [-0.4, 0.6])."""
    mix = max(-0.4, min(0.6, mix))
    base = to_rgb(colour)
    if mix >= 0:
        return tuple(c + (1 - c) * mix for c in base)  # type: ignore[return-value]
    return tuple(c * (1 + mix) for c in base)  # type: ignore[return-value]


@singledispatch
def op_colour(op: OpSpec) -> RGB:
    """The fill colour of ``op`` in every plot (see the module docstring)."""
    raise TypeError(f"no colour for op {op!r}")


@op_colour.register
def _mbconv_colour(op: MBConvOp) -> RGB:
    """Hue by kernel size, lighter for small expand ratios (e1 lightest, e6 full colour)."""
    base = to_rgb(kernel_colour(op.kernel_size))
    mix = max(0.0, min(1.0, (6 - op.expand_ratio) / 8))
    return tuple(c + (1 - c) * mix for c in base)  # type: ignore[return-value]


@op_colour.register(ZeroOp)
@op_colour.register(NoneOp)
def _zero_colour(op: ZeroOp | NoneOp) -> RGB:
    return to_rgb(ZERO_COLOUR)


@op_colour.register
def _skip_colour(op: SkipOp) -> RGB:
    return to_rgb(FAMILY_COLOURS["skip_connect"])


@op_colour.register
def _conv_colour(op: ReLUConvBNOp) -> RGB:
    return _shade(FAMILY_COLOURS["nor_conv"], (3 - op.kernel_size) / 4)


@op_colour.register
def _pool_colour(op: AvgPoolOp) -> RGB:
    return _shade(FAMILY_COLOURS["avg_pool"], (3 - op.kernel_size) / 4)


@op_colour.register
def _sep_colour(op: SepConvOp) -> RGB:
    return _shade(FAMILY_COLOURS["sep_conv"], (5 - op.kernel_size) / 5)


@op_colour.register
def _dil_colour(op: DilConvOp) -> RGB:
    return _shade(FAMILY_COLOURS["dil_conv"], (3 - op.kernel_size) / 4)


@op_colour.register
def _max_pool_colour(op: MaxPoolOp) -> RGB:
    return _shade(FAMILY_COLOURS["max_pool"], (3 - op.kernel_size) / 4)


@op_colour.register(ConvBNOp)
@op_colour.register(ResBlockOp)
@op_colour.register(PreConvOp)
@op_colour.register(BNOp)
@op_colour.register(ChunkOp)
@op_colour.register(PadSkipOp)
def _fixed_colour(op: ConvBNOp | ResBlockOp | PreConvOp | BNOp | ChunkOp | PadSkipOp) -> RGB:
    return to_rgb(FIXED_COLOUR)


@singledispatch
def op_width(op: OpSpec) -> float:
    """Box width along a chain diagram: 0.5 (as MB1) unless the op's family has its own."""
    return 0.5


@op_width.register
def _mbconv_width(op: MBConvOp) -> float:
    """0.35 + 0.15 * expand ratio: the wider the block, the wider its box."""
    return 0.35 + 0.15 * op.expand_ratio


def kernel_legend(ops) -> list[tuple[str, str]]:
    """``(label, colour)`` per MBConv kernel size among ``ops``, smallest first."""
    kernels = sorted({op.kernel_size for op in ops if isinstance(op, MBConvOp)})
    return [(f"{k}x{k}", kernel_colour(k)) for k in kernels]


@singledispatch
def op_label(op: OpSpec) -> str:
    """Short label: 'MB6 5x5' as in the paper's figure, 'skip' for a chain's zero; other ops
    their token."""
    return op.token


@op_label.register
def _mbconv_label(op: MBConvOp) -> str:
    return f"MB{op.expand_ratio} {op.kernel_size}x{op.kernel_size}"


@op_label.register
def _zero_label(op: ZeroOp) -> str:
    return "skip"
