"""Named search spaces: the paper's ImageNet space, a CIFAR-size space, a tiny test space (chains)
NAS-Bench-201 and the tree-cell space of the paper's CIFAR-10 model (graph spaces,
``space/nasbench201.py``, ``space/pyramid_tree.py``).

The three chains share one builder, :func:`mobile_chain`: a stem, one fixed first block, then stages
of MBConv blocks. The first block of a stage carries the stage's stride; the zero candidate is
added only where stride is 1 and in == out channels.

``proxyless-cifar`` keeps the paper's stages, widths and depths and moves the downsampling for
32x32 inputs: stem stride 1 and stage strides (1, 2, 2, 1, 2, 1), so the feature map goes
32 -> 32 (stem, first block, stage 1) -> 16 -> 8 -> 8 -> 4 -> 4: the last feature map is 4x4
(the paper's space ends at 7x7 for 224 inputs).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from proxylessnas import arguments as kinds
from proxylessnas.errors import ProxylessError
from proxylessnas.ops.blocks import make_divisible
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.nasbench201 import nasbench201
from proxylessnas.space.ops import ZERO, MBConvOp, parse_op, parse_ops
from proxylessnas.space.pyramid_tree import pyramid_tree
from proxylessnas.space.shapes import total_stride
from proxylessnas.space.spec import BNSpec, HeadSpec, LayerSpec, SearchSpace, StemSpec

PAPER_CANDIDATES = "mb_k{3,5,7}_e{3,6}"
PAPER_STAGE_WIDTHS = (24, 40, 80, 96, 192, 320)
PAPER_DEPTHS = (4, 4, 4, 4, 4, 1)
PAPER_STRIDES = (2, 2, 2, 1, 2, 1)


def _op_names_reason(value: Any) -> str | None:
    if isinstance(value, str) or (isinstance(value, (list, tuple)) and value
                                  and all(isinstance(item, str) for item in value)):
        return None
    return "is not an op pattern or a list of op names"


OVERRIDE_KINDS = {  # what each override of a preset may be: checked before the space is built
    "resolution": kinds.resolution, "num_classes": kinds.num_classes, "in_chs": kinds.channels,
    "width_mult": kinds.width_mult, "stem_width": kinds.channels, "first_width": kinds.channels,
    "head_width": kinds.channels, "stage_widths": kinds.list_of(kinds.channels, "a list of channel counts"),
    "depths": kinds.list_of(kinds.depth, f"a list of depths of 1 to {kinds.MAX_DEPTH}"),
    "strides": kinds.list_of(kinds.stride, "a list of strides of 1 to 8"), "channels": kinds.channels,
    "cells_per_stage": kinds.depth, "dropout": kinds.rate, "bn_momentum": kinds.unit_interval,
    "bn_eps": kinds.positive_float, "zero": kinds.boolean, "blocks_per_stage": kinds.depth,
    "alpha": kinds.non_negative_int, "bottleneck": kinds.positive_int,
    "candidates": kinds.Kind("an op pattern or a list of op names", str, _op_names_reason),
}


def mobile_chain(
    name: str,
    *,
    resolution: int,
    num_classes: int,
    in_chs: int,
    stem_width: int,
    stem_stride: int,
    first_width: int,
    first_op: str,
    stage_widths: Sequence[int],
    depths: Sequence[int],
    strides: Sequence[int],
    head_width: int,
    candidates: str | Sequence[str],
    zero: bool,
    dropout: float,
    bn_momentum: float,
    bn_eps: float,
    overrides: dict[str, Any],
) -> SearchSpace:
    """Build a MobileNetV2-style chain space; labels are ``s0.b0`` (fixed) and ``sS.bB``."""
    if not (len(stage_widths) == len(depths) == len(strides)):
        raise ProxylessError("stage_widths, depths and strides differ in length", name,
                             "give one width, depth and stride per stage")
    ops = tuple(op for op in parse_ops(candidates, f"{name}: candidates") if not op.is_zero)
    if not ops:
        raise ProxylessError("no MBConv candidates", name, "give candidates such as mb_k3_e6")
    others = [op.token for op in ops if not isinstance(op, MBConvOp)]
    if others:
        raise ProxylessError(f"op(s) {', '.join(others)} are not MBConv ops", f"{name}: candidates",
                             "a chain space takes mb_k<kernel>_e<expand> candidates and 'zero'")
    layers = [LayerSpec("s0.b0", stem_width, first_width, 1, (parse_op(first_op, name),))]
    chs = first_width
    for stage, (width, depth, stride) in enumerate(zip(stage_widths, depths, strides), start=1):
        for block in range(depth):
            s = stride if block == 0 else 1
            cands = ops + ((ZERO,) if zero and s == 1 and chs == width else ())
            layers.append(LayerSpec(f"s{stage}.b{block}", chs, width, s, cands))
            chs = width
    return SearchSpace(
        name=name, resolution=resolution,
        stem=StemSpec(in_chs, stem_width, 3, stem_stride), layers=tuple(layers),
        head=HeadSpec(chs, head_width, num_classes, dropout),
        bn=BNSpec(bn_momentum, bn_eps), overrides=overrides)


def _scaled(widths: Sequence[int], width_mult: float) -> tuple[int, ...]:
    return tuple(make_divisible(w * width_mult, 8) for w in widths)


def proxyless_imagenet(
    *, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000,
    candidates: str | Sequence[str] = PAPER_CANDIDATES, zero: bool = True, in_chs: int = 3,
    stem_width: int | None = None, first_width: int | None = None,
    stage_widths: Sequence[int] | None = None, depths: Sequence[int] = PAPER_DEPTHS,
    strides: Sequence[int] = PAPER_STRIDES, head_width: int | None = None,
    dropout: float = 0.0, bn_momentum: float = 0.1, bn_eps: float = 1e-3,
    _name: str = "proxyless-imagenet", _stem_stride: int = 2,
) -> SearchSpace:
    """The paper's space: 224x224, stem 32 s2, fixed mb_k3_e1 32->16, six searched stages
    (24, 40, 80, 96, 192, 320) x (4, 4, 4, 4, 4, 1), strides (2, 2, 2, 1, 2, 1), candidates
    mb_k{3,5,7}_e{3,6} plus zero where legal, head 1x1 conv to 1280. Explicit widths override
    the width multiplier (the published nets use their own widths)."""
    stem = stem_width or make_divisible(32 * width_mult, 8)
    first = first_width or make_divisible(16 * width_mult, 8)
    widths = tuple(stage_widths) if stage_widths else _scaled(PAPER_STAGE_WIDTHS, width_mult)
    head = head_width or (make_divisible(1280 * width_mult, 8) if width_mult > 1.0 else 1280)
    return mobile_chain(
        _name, resolution=resolution, num_classes=num_classes, in_chs=in_chs,
        stem_width=stem, stem_stride=_stem_stride, first_width=first, first_op="mb_k3_e1",
        stage_widths=widths, depths=tuple(depths), strides=tuple(strides), head_width=head,
        candidates=candidates, zero=zero, dropout=dropout, bn_momentum=bn_momentum,
        bn_eps=bn_eps, overrides={})


def proxyless_cifar(
    *, width_mult: float = 1.0, resolution: int = 32, num_classes: int = 10,
    candidates: str | Sequence[str] = PAPER_CANDIDATES, zero: bool = True, in_chs: int = 3,
    stem_width: int | None = None, first_width: int | None = None,
    stage_widths: Sequence[int] | None = None, depths: Sequence[int] = PAPER_DEPTHS,
    strides: Sequence[int] = (1, 2, 2, 1, 2, 1), head_width: int | None = None,
    dropout: float = 0.0, bn_momentum: float = 0.1, bn_eps: float = 1e-3,
) -> SearchSpace:
    """The paper's stages adapted to 32x32: stem stride 1, stage strides (1, 2, 2, 1, 2, 1),
    last feature map 4x4."""
    return proxyless_imagenet(
        width_mult=width_mult, resolution=resolution, num_classes=num_classes,
        candidates=candidates, zero=zero, in_chs=in_chs, stem_width=stem_width,
        first_width=first_width, stage_widths=stage_widths, depths=depths, strides=strides,
        head_width=head_width, dropout=dropout, bn_momentum=bn_momentum, bn_eps=bn_eps,
        _name="proxyless-cifar", _stem_stride=1)


def tiny(
    *, resolution: int = 16, num_classes: int = 4, candidates: str | Sequence[str] = "mb_k{3,5}_e{1,3}",
    zero: bool = True, in_chs: int = 3, stage_widths: Sequence[int] = (8, 8),
    depths: Sequence[int] = (2, 2), strides: Sequence[int] = (2, 1), head_width: int = 16,
    dropout: float = 0.0, bn_momentum: float = 0.1, bn_eps: float = 1e-3,
) -> SearchSpace:
    """A few layers for tests: 16x16 input, stem 8, two stages of two blocks, 4-5 candidates."""
    return mobile_chain(
        "tiny", resolution=resolution, num_classes=num_classes, in_chs=in_chs, stem_width=8,
        stem_stride=1, first_width=8, first_op="mb_k3_e1", stage_widths=tuple(stage_widths),
        depths=tuple(depths), strides=tuple(strides), head_width=head_width,
        candidates=candidates, zero=zero, dropout=dropout, bn_momentum=bn_momentum,
        bn_eps=bn_eps, overrides={})


PRESETS: dict[str, Callable[..., SearchSpace | GraphSpace]] = {
    "proxyless-imagenet": proxyless_imagenet,
    "proxyless-cifar": proxyless_cifar,
    "tiny": tiny,
    "nasbench201": nasbench201,
    "pyramid-tree": pyramid_tree,
}


def _public_params(factory: Callable[..., SearchSpace | GraphSpace]) -> list[str]:
    return [name for name, p in inspect.signature(factory).parameters.items()
            if p.kind is p.KEYWORD_ONLY and not name.startswith("_")]


def get_space(name: str, **overrides: Any) -> SearchSpace | GraphSpace:
    """A preset space by name, customised by keyword overrides (validated: unknown keys, bad sizes and
    a resolution below the space's total stride fail).

    >>> get_space("proxyless-imagenet", width_mult=1.4, resolution=160).resolution
    160
    """
    if name not in PRESETS:
        raise ProxylessError(f"unknown search space '{name}'", "space",
                             f"use one of {', '.join(PRESETS)}")
    factory = PRESETS[name]
    allowed = _public_params(factory)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ProxylessError(f"unknown override(s) {', '.join(unknown)} for space '{name}'",
                             "space", f"use any of {', '.join(allowed)}")
    for key, value in overrides.items():
        OVERRIDE_KINDS[key].check(value, f"space {name}", key)
    clean = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    space = factory(**overrides)
    stride = total_stride(space)
    if space.resolution < stride:
        raise ProxylessError(f"resolution {space.resolution} is too small for space '{name}'",
                             f"its strides shrink a side {stride}-fold",
                             f"give a resolution of at least {stride}")
    object.__setattr__(space, "overrides", clean)
    return space


def space_names() -> list[str]:
    return list(PRESETS)
