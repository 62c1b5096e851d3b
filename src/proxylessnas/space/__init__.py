"""Search spaces as plain typed data: op grammar, chain (layer) and graph (decision) specs,
presets, Arch, shapes."""

from proxylessnas.space.arch import Arch, load_arch_or_string
from proxylessnas.space.graph import Decision, Edge, GraphHead, GraphSpace, space_from_dict
from proxylessnas.space.ops import (
    NONE,
    SKIP,
    ZERO,
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
    "Arch", "AvgPoolOp", "BNOp", "BNSpec", "ChunkOp", "ConvBNOp", "Decision", "DilConvOp", "Edge",
    "GraphHead", "GraphSpace", "HeadSpec", "LayerShape", "LayerSpec", "MBConvOp", "MaxPoolOp", "NONE",
    "NoneOp", "OpSpec", "PadSkipOp", "PreConvOp", "ReLUConvBNOp", "ResBlockOp", "SKIP", "SearchSpace",
    "SepConvOp", "Shape", "SkipOp", "StemSpec", "ZERO", "ZeroOp",
    "conv_output_size", "expand_braces", "format_op", "get_space", "infer_shapes",
    "load_arch_or_string", "parse_op", "parse_ops", "shapes_by_label", "space_from_dict",
    "space_names",
]
