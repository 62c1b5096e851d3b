"""Search spaces as plain typed data: op grammar, layer and space specs, presets, Arch, shapes."""

from proxylessnas.space.arch import Arch
from proxylessnas.space.ops import (
    ZERO,
    MBConvOp,
    OpSpec,
    ZeroOp,
    expand_braces,
    format_op,
    parse_op,
    parse_ops,
)
from proxylessnas.space.presets import get_space, space_names
from proxylessnas.space.shapes import (
    LayerShape,
    Shape,
    conv_output_size,
    infer_shapes,
    shapes_by_label,
)
from proxylessnas.space.spec import BNSpec, HeadSpec, LayerSpec, SearchSpace, StemSpec

__all__ = [
    "Arch", "BNSpec", "HeadSpec", "LayerShape", "LayerSpec", "MBConvOp", "OpSpec", "SearchSpace",
    "Shape", "StemSpec", "ZERO", "ZeroOp", "conv_output_size", "expand_braces", "format_op",
    "get_space", "infer_shapes", "parse_op", "parse_ops", "shapes_by_label", "space_names",
]
