"""The one shape-inference function: every layer's input and output H x W x C.

A conv with odd kernel k, padding k // 2 and stride s maps a side of n pixels to
``(n - 1) // s + 1`` (= ceil(n / s)). Latency keys, the table builder, the expected-latency loss
and the reports all take their shapes from :func:`infer_shapes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import singledispatch

from proxylessnas.space.spec import SearchSpace


def conv_output_size(size: int, stride: int) -> int:
    """Output side of a 'same'-padded conv with odd kernel: ceil(size / stride)."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class Shape:
    """Height, width, channels of a feature map."""

    height: int
    width: int
    channels: int

    def __str__(self) -> str:
        return f"{self.height}x{self.width}x{self.channels}"


@dataclass(frozen=True)
class LayerShape:
    """Input and output shape of one part of a space; ``kind`` is stem|block|head|classifier for a
    chain, fixed|searched|head for a graph's edges and head."""

    label: str
    kind: str
    input: Shape
    output: Shape


@singledispatch
def infer_shapes(space, resolution: int | None = None) -> tuple[LayerShape, ...]:
    """Shapes of every part of ``space``; a graph space (``space/graph.py``) registers its own:
    one row per edge, in edge order, then the head."""
    raise TypeError(f"no shape inference for {type(space).__name__}")


@infer_shapes.register
def _chain_shapes(space: SearchSpace, resolution: int | None = None) -> tuple[LayerShape, ...]:
    """Shapes of the stem, every layer (labels as in the space), the head and the classifier."""
    side = resolution or space.resolution
    current = Shape(side, side, space.stem.in_chs)
    out: list[LayerShape] = []

    def step(label: str, kind: str, channels: int, stride: int) -> None:
        nonlocal current
        size = conv_output_size(current.height, stride), conv_output_size(current.width, stride)
        nxt = Shape(size[0], size[1], channels)
        out.append(LayerShape(label, kind, current, nxt))
        current = nxt

    step("stem", "stem", space.stem.out_chs, space.stem.stride)
    for layer in space.layers:
        step(layer.label, "block", layer.out_chs, layer.stride)
    step("head", "head", space.head.out_chs, 1)
    out.append(LayerShape("classifier", "classifier", Shape(1, 1, space.head.out_chs),
                          Shape(1, 1, space.head.num_classes)))
    return tuple(out)


@singledispatch
def total_stride(space) -> int:
    """By how much the strides shrink a side from the input to the last feature map: the smallest
    resolution whose every stride still has pixels to reduce. A graph space registers its own."""
    raise TypeError(f"no total stride for {type(space).__name__}")


@total_stride.register
def _chain_stride(space: SearchSpace) -> int:
    return math.prod([space.stem.stride, *(layer.stride for layer in space.layers)])


def shapes_by_label(space, resolution: int | None = None) -> dict[str, LayerShape]:
    return {shape.label: shape for shape in infer_shapes(space, resolution)}
