"""Op-string grammar: the candidates of a searched layer or edge, written as short tokens.

Grammar (one op)::

    op       := mbconv | "zero" | cell_op | fixed_op
    mbconv   := "mb_k" KERNEL "_e" EXPAND       e.g. mb_k5_e6: 5x5 depthwise, expand ratio 6
    cell_op  := "none" | "skip_connect" | "nor_conv_" KERNEL "x" KERNEL | "avg_pool_" KERNEL "x" KERNEL
              | "sep_conv_" KERNEL "x" KERNEL | "dil_conv_" KERNEL "x" KERNEL | "max_pool_" KERNEL "x" KERNEL
    fixed_op := "conv_bn_" KERNEL "x" KERNEL | "res_block_" KERNEL "x" KERNEL
              | "bn" ["_relu"] "_conv_" KERNEL "x" KERNEL ["_g" GROUPS] | "bn" | "chunk_" INDEX | "pad_skip"

KERNEL is an odd integer >= 1 (both KERNELs of one token equal), EXPAND an integer >= 1. Stride
and channels belong to the layer or edge, not to the op. In a chain, ``zero`` skips the block
(the layer becomes the identity); it is legal only where the layer has stride 1 and in == out
channels. On a graph edge (``space/graph.py``) ``zero`` and ``none`` both mean "the edge
contributes 0" (``is_zero`` is True for both).

The cell ops are NAS-Bench-201's (Dong & Yang, ICLR 2020): ``skip_connect`` the identity,
``nor_conv_kxk`` ReLU -> kxk conv -> BN, ``avg_pool_kxk`` average pooling (padding k // 2,
padding not counted). The fixed ops build a graph space's skeleton: ``conv_bn_kxk`` a kxk conv
+ BN without activation (a stem), ``res_block_kxk`` a ResNet basic block (the benchmark's
residual reduction block between stages).

The tree cell's ops (Cai et al., ICML 2018 and the ProxylessNAS CIFAR-10 model; see
``space/pyramid_tree.py``) keep the pre-activation order BN -> ReLU -> weight: ``sep_conv_kxk``
one depthwise-separable conv (kxk depthwise, 1x1 pointwise), ``dil_conv_kxk`` the same with
dilation 2, ``max_pool_kxk`` max pooling (padding k // 2). Its skeleton: ``bn_conv_kxk`` and
``bn_relu_conv_kxk`` (``_g<G>``: G groups, then a channel shuffle), ``bn`` a BatchNorm alone,
``chunk_<i>`` the i-th slice of ``out_chs`` input channels, ``pad_skip`` PyramidNet's shortcut
(a 2x2 average pool where the stride is 2, then zero channels appended up to ``out_chs``).

A candidate list may use brace expansion and commas: ``"mb_k{3,5,7}_e{3,6},zero"`` expands to
seven ops, in order (the rightmost brace varies fastest). ``format_op(parse_op(s)) == s``.

A space's fixed parts have op specs too, which op strings do not write (``parse_op`` refuses
them): a chain's stem (:class:`StemOp`), head conv (:class:`HeadConvOp`) and classifier
(:class:`ClassifierOp`), a graph space's head (:class:`PoolHeadOp`). ``StemSpec.op``,
``HeadSpec.conv_op`` / ``classifier_op`` and ``GraphHead.op`` make them, so that the op registry
(``nets/op_registry.py``) builds, counts and keys every part of a net alike.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import ClassVar

from proxylessnas.errors import ProxylessError

_MB_RE = re.compile(r"^mb_k(\d+)_e(\d+)$")
_SQUARE_RE = re.compile(r"^(nor_conv|avg_pool|conv_bn|res_block|sep_conv|dil_conv|max_pool)_(\d+)x(\d+)$")
_PRE_CONV_RE = re.compile(r"^bn(_relu)?_conv_(\d+)x(\d+)(?:_g(\d+))?$")
_CHUNK_RE = re.compile(r"^chunk_(0|[1-9]\d*)$")


class _Op:
    """What every op spec has: a ``token`` (its string), ``is_zero`` (contributes 0) and
    ``parameter_free`` (learns nothing: a search that settles on such ops everywhere collapsed)."""

    is_zero: ClassVar[bool] = False
    parameter_free: ClassVar[bool] = False
    token: str

    def __str__(self) -> str:
        return self.token


class _SquareOp(_Op):
    """An op with one odd ``kernel_size``, written ``<prefix>_<k>x<k>``."""

    prefix: ClassVar[str]
    kernel_size: int

    @property
    def token(self) -> str:
        return f"{self.prefix}_{self.kernel_size}x{self.kernel_size}"


@dataclass(frozen=True, order=True)
class MBConvOp(_Op):
    """Inverted-residual block: 1x1 expand (if expand_ratio > 1), kxk depthwise, 1x1 project."""

    kernel_size: int
    expand_ratio: int

    @property
    def token(self) -> str:
        return f"mb_k{self.kernel_size}_e{self.expand_ratio}"


@dataclass(frozen=True, order=True)
class ZeroOp(_Op):
    """Skip the block: the layer computes the identity (only where stride 1 and in == out)."""

    token: ClassVar[str] = "zero"
    is_zero: ClassVar[bool] = True
    parameter_free: ClassVar[bool] = True


@dataclass(frozen=True, order=True)
class NoneOp(_Op):
    """``none``: the edge contributes 0 (NAS-Bench-201's name for the zero op)."""

    token: ClassVar[str] = "none"
    is_zero: ClassVar[bool] = True
    parameter_free: ClassVar[bool] = True


@dataclass(frozen=True, order=True)
class SkipOp(_Op):
    """``skip_connect``: the identity (only where stride 1 and in == out channels)."""

    token: ClassVar[str] = "skip_connect"
    parameter_free: ClassVar[bool] = True


@dataclass(frozen=True, order=True)
class ReLUConvBNOp(_SquareOp):
    """``nor_conv_kxk``: ReLU -> kxk conv (stride of the edge, padding k // 2) -> BN."""

    prefix: ClassVar[str] = "nor_conv"
    kernel_size: int


@dataclass(frozen=True, order=True)
class AvgPoolOp(_SquareOp):
    """``avg_pool_kxk``: kxk average pool, padding k // 2, padded pixels not counted."""

    prefix: ClassVar[str] = "avg_pool"
    parameter_free: ClassVar[bool] = True
    kernel_size: int


@dataclass(frozen=True, order=True)
class ConvBNOp(_SquareOp):
    """``conv_bn_kxk``: kxk conv + BN, no activation (the NAS-Bench-201 stem)."""

    prefix: ClassVar[str] = "conv_bn"
    kernel_size: int


@dataclass(frozen=True, order=True)
class ResBlockOp(_SquareOp):
    """``res_block_kxk``: ResNet basic block, ``shortcut(x) + BN(conv(ReLU(BN(conv(ReLU(x))))))``.

    Convs kxk (the first with the edge's stride); shortcut: 2x2 average pool + 1x1 conv (no BN)
    where stride 2, ReLU -> 1x1 conv -> BN where stride 1 and the channels change, else the
    identity. No ReLU after the sum (NAS-Bench-201's residual reduction block)."""

    prefix: ClassVar[str] = "res_block"
    kernel_size: int


@dataclass(frozen=True, order=True)
class SepConvOp(_SquareOp):
    """``sep_conv_kxk``: BN -> ReLU -> kxk depthwise conv (the edge's stride) -> 1x1 conv."""

    prefix: ClassVar[str] = "sep_conv"
    kernel_size: int
    dilation: ClassVar[int] = 1


@dataclass(frozen=True, order=True)
class DilConvOp(_SquareOp):
    """``dil_conv_kxk``: :class:`SepConvOp` with a depthwise conv of dilation 2."""

    prefix: ClassVar[str] = "dil_conv"
    kernel_size: int
    dilation: ClassVar[int] = 2


@dataclass(frozen=True, order=True)
class MaxPoolOp(_SquareOp):
    """``max_pool_kxk``: kxk max pool, padding k // 2."""

    prefix: ClassVar[str] = "max_pool"
    parameter_free: ClassVar[bool] = True
    kernel_size: int


@dataclass(frozen=True, order=True)
class PreConvOp(_Op):
    """``bn[_relu]_conv_kxk[_g<G>]``: BN -> ReLU (when ``relu``) -> kxk conv with ``groups``,
    followed by a channel shuffle when ``groups > 1`` (the tree cell's root edge)."""

    kernel_size: int
    relu: bool = True
    groups: int = 1

    @property
    def token(self) -> str:
        groups = f"_g{self.groups}" if self.groups > 1 else ""
        act = "_relu" if self.relu else ""
        return f"bn{act}_conv_{self.kernel_size}x{self.kernel_size}{groups}"


@dataclass(frozen=True, order=True)
class BNOp(_Op):
    """``bn``: a BatchNorm alone (a tree cell's branch BN, a PyramidNet block's last BN)."""

    token: ClassVar[str] = "bn"


@dataclass(frozen=True, order=True)
class ChunkOp(_Op):
    """``chunk_<i>``: input channels ``[i * C_out, (i + 1) * C_out)`` (a tree cell's split)."""

    index: int
    parameter_free: ClassVar[bool] = True

    @property
    def token(self) -> str:
        return f"chunk_{self.index}"


@dataclass(frozen=True, order=True)
class PadSkipOp(_Op):
    """``pad_skip``: PyramidNet's shortcut: a 2x2 average pool (stride 2) where the edge's
    stride is 2, then ``C_out - C_in`` zero channels appended."""

    token: ClassVar[str] = "pad_skip"
    parameter_free: ClassVar[bool] = True


@dataclass(frozen=True, order=True)
class StemOp(_Op):
    """A chain's stem: kxk conv (the stem's stride) + BN + ReLU6; token ``conv_k<k>``."""

    kernel_size: int

    @property
    def token(self) -> str:
        return f"conv_k{self.kernel_size}"


@dataclass(frozen=True, order=True)
class HeadConvOp(_Op):
    """A chain's head conv: 1x1 conv + BN + ReLU6 before the classifier."""

    token: ClassVar[str] = "conv_k1"
    kernel_size: ClassVar[int] = 1


@dataclass(frozen=True, order=True)
class ClassifierOp(_Op):
    """A chain's classifier: global average pool, dropout, linear (with bias)."""

    token: ClassVar[str] = "pool_linear"
    dropout: float = 0.0


@dataclass(frozen=True, order=True)
class PoolHeadOp(_Op):
    """A graph space's head: BN -> ReLU (when ``bn_relu``), global average pool, dropout, linear."""

    bn_relu: bool = True
    dropout: float = 0.0

    @property
    def token(self) -> str:
        return "bn_relu_pool_linear" if self.bn_relu else "pool_linear"


HEAD_CONV = HeadConvOp()
FixedPartOp = StemOp | HeadConvOp | ClassifierOp | PoolHeadOp
"""The ops of a space's fixed parts (not candidates: no op string writes them)."""

OpSpec = (MBConvOp | ZeroOp | NoneOp | SkipOp | ReLUConvBNOp | AvgPoolOp | ConvBNOp | ResBlockOp | SepConvOp
          | DilConvOp | MaxPoolOp | PreConvOp | BNOp | ChunkOp | PadSkipOp)
ZERO = ZeroOp()
NONE = NoneOp()
SKIP = SkipOp()
NAS_BENCH_201_OPS = (NONE, SKIP, ReLUConvBNOp(1), ReLUConvBNOp(3), AvgPoolOp(3))
"""NAS-Bench-201's five candidates, in the benchmark's order."""

_SQUARE_OPS = {"nor_conv": ReLUConvBNOp, "avg_pool": AvgPoolOp, "conv_bn": ConvBNOp,
               "res_block": ResBlockOp, "sep_conv": SepConvOp, "dil_conv": DilConvOp, "max_pool": MaxPoolOp}
_KEYWORD_OPS = {"zero": ZERO, "none": NONE, "skip_connect": SKIP, "bn": BNOp(), "pad_skip": PadSkipOp()}
_GRAMMAR = ("write ops as 'mb_k<kernel>_e<expand>' (e.g. mb_k5_e6) or 'zero', or cell ops 'none', "
            "'skip_connect', 'nor_conv_<k>x<k>', 'avg_pool_<k>x<k>', 'sep_conv_<k>x<k>', "
            "'dil_conv_<k>x<k>', 'max_pool_<k>x<k>'")


def is_parameter_free(op: OpSpec) -> bool:
    """Ops that learn nothing (zero / none, identity, pooling)."""
    return op.parameter_free


def parse_op(text: str, where: str = "op string") -> OpSpec:
    """Parse one op token; the error names the bad token and shows the grammar."""
    token = text.strip() if isinstance(text, str) else text
    if not isinstance(token, str):
        raise ProxylessError(f"op must be a string, got {type(text).__name__}", where,
                             "write ops as 'mb_k<kernel>_e<expand>' or 'zero'")
    if token in _KEYWORD_OPS:
        return _KEYWORD_OPS[token]
    square = _SQUARE_RE.match(token)
    if square is not None:
        family, kernel, kernel_w = square.group(1), int(square.group(2)), int(square.group(3))
        if kernel != kernel_w:
            raise ProxylessError(f"non-square kernel {kernel}x{kernel_w} in op '{token}'", where,
                                 f"use a square odd kernel such as {family}_3x3")
        _check_kernel(kernel, token, where)
        return _SQUARE_OPS[family](kernel)
    special = _tree_skeleton_op(token, where)
    if special is not None:
        return special
    match = _MB_RE.match(token)
    if match is None:
        raise ProxylessError(f"unknown op '{token}'", where, _GRAMMAR)
    kernel, expand = int(match.group(1)), int(match.group(2))
    _check_kernel(kernel, token, where)
    if expand < 1:
        raise ProxylessError(f"bad expand ratio {expand} in op '{token}'", where,
                             "use an expand ratio >= 1")
    return MBConvOp(kernel, expand)


def _tree_skeleton_op(token: str, where: str) -> OpSpec | None:
    """``bn[_relu]_conv_kxk[_g<G>]`` or ``chunk_<i>``; None for any other token."""
    chunk = _CHUNK_RE.match(token)
    if chunk is not None:
        return ChunkOp(int(chunk.group(1)))
    conv = _PRE_CONV_RE.match(token)
    if conv is None:
        return None
    kernel, kernel_w = int(conv.group(2)), int(conv.group(3))
    if kernel != kernel_w:
        raise ProxylessError(f"non-square kernel {kernel}x{kernel_w} in op '{token}'", where,
                             "use a square odd kernel such as bn_relu_conv_3x3")
    _check_kernel(kernel, token, where)
    groups = int(conv.group(4) or 1)
    if groups < 2 and conv.group(4) is not None:
        raise ProxylessError(f"bad number of groups in op '{token}'", where,
                             "write _g<G> with G >= 2, or leave it out for an ordinary conv")
    return PreConvOp(kernel, conv.group(1) is not None, groups)


def _check_kernel(kernel: int, token: str, where: str) -> None:
    if kernel < 1 or kernel % 2 == 0:
        raise ProxylessError(f"bad kernel size {kernel} in op '{token}'", where,
                             "use an odd kernel size such as 3, 5 or 7")


def format_op(op: OpSpec) -> str:
    """The canonical token of an op (inverse of :func:`parse_op`)."""
    return op.token


def _split_top_level(text: str, where: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise ProxylessError(f"unbalanced '}}' in '{text}'", where, "balance the braces")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ProxylessError(f"unbalanced '{{' in '{text}'", where, "balance the braces")
    parts.append("".join(current))
    return [p.strip() for p in parts]


def expand_braces(pattern: str, where: str = "op list") -> list[str]:
    """``"mb_k{3,5}_e{3,6},zero"`` -> ``["mb_k3_e3", "mb_k3_e6", "mb_k5_e3", "mb_k5_e6", "zero"]``."""
    out: list[str] = []
    for part in _split_top_level(pattern, where):
        if not part:
            raise ProxylessError(f"empty op in '{pattern}'", where, "remove the extra comma")
        pieces = re.split(r"(\{[^{}]*\})", part)
        if any("{" in p or "}" in p for p in pieces[::2]):
            raise ProxylessError(f"nested or unbalanced braces in '{part}'", where,
                                 "use flat braces such as mb_k{3,5}_e{3,6}")
        choices = [[v.strip() for v in p[1:-1].split(",")] if p.startswith("{") else [p]
                   for p in pieces]
        out.extend("".join(combo) for combo in itertools.product(*choices))
    return out


def parse_ops(pattern: str | list[str] | tuple[str, ...], where: str = "op list") -> tuple[OpSpec, ...]:
    """Parse a candidate list (a brace pattern or a list of tokens); duplicates are an error."""
    tokens = expand_braces(pattern, where) if isinstance(pattern, str) else \
        [t for p in pattern for t in expand_braces(p, where)]
    ops = tuple(parse_op(t, where) for t in tokens)
    seen = set()
    for op in ops:
        if op in seen:
            raise ProxylessError(f"duplicate op '{op.token}'", where, "list each op once")
        seen.add(op)
    return ops
