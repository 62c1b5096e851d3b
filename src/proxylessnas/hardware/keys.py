"""``LayerKey``: what a block's cost depends on, derived from shape inference.

One canonical string per key, used when a table is built and when it is read::

    stem-input:32x32x3-output:32x32x32-kernel:3-expand:1-stride:1-residual:0
    mbconv-input:32x32x24-output:16x16x40-kernel:5-expand:6-stride:2-residual:0
    head-input:4x4x320-output:4x4x1280-kernel:1-expand:1-stride:1-residual:0
    classifier-input:4x4x1280-output:1x1x10-kernel:1-expand:1-stride:1-residual:0

The classifier's input is the head's output map (the key includes the global pooling). Two
layers with the same shapes and op share a key, so a table holds each unique block once. The
zero op has no key: it costs 0 by definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxylessnas.errors import ProxylessError
from proxylessnas.space.arch import Arch
from proxylessnas.space.ops import OpSpec
from proxylessnas.space.shapes import Shape, infer_shapes
from proxylessnas.space.spec import SearchSpace

KINDS = ("stem", "mbconv", "head", "classifier")
_KEY_RE = re.compile(
    r"^(?P<kind>[a-z]+)-input:(?P<ih>\d+)x(?P<iw>\d+)x(?P<ic>\d+)"
    r"-output:(?P<oh>\d+)x(?P<ow>\d+)x(?P<oc>\d+)-kernel:(?P<k>\d+)-expand:(?P<e>\d+)"
    r"-stride:(?P<s>\d+)-residual:(?P<r>[01])$")


@dataclass(frozen=True, order=True)
class LayerKey:
    """Op kind, input and output H x W x C, kernel size, expand ratio, stride, residual."""

    kind: str
    input: tuple[int, int, int]
    output: tuple[int, int, int]
    kernel_size: int = 1
    expand_ratio: int = 1
    stride: int = 1
    residual: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ProxylessError(f"unknown layer kind '{self.kind}'", "latency key",
                                 f"use one of {', '.join(KINDS)}")

    def __str__(self) -> str:
        (ih, iw, ic), (oh, ow, oc) = self.input, self.output
        return (f"{self.kind}-input:{ih}x{iw}x{ic}-output:{oh}x{ow}x{oc}"
                f"-kernel:{self.kernel_size}-expand:{self.expand_ratio}-stride:{self.stride}"
                f"-residual:{int(self.residual)}")

    @classmethod
    def parse(cls, text: str, where: str = "latency key") -> LayerKey:
        match = _KEY_RE.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ProxylessError(f"malformed layer key '{text}'", where,
                                 "write keys as printed by 'proxyless latency export-ops'")
        g = {name: match.group(name) for name in _KEY_RE.groupindex}
        return cls(g["kind"], (int(g["ih"]), int(g["iw"]), int(g["ic"])),
                   (int(g["oh"]), int(g["ow"]), int(g["oc"])), int(g["k"]), int(g["e"]),
                   int(g["s"]), g["r"] == "1")

    @property
    def input_shape(self) -> Shape:
        return Shape(*self.input)

    @property
    def output_shape(self) -> Shape:
        return Shape(*self.output)


def _hwc(shape: Shape) -> tuple[int, int, int]:
    return (shape.height, shape.width, shape.channels)


@dataclass(frozen=True)
class SpaceKeys:
    """Every key a space can need: fixed parts, and per searched layer one key per candidate
    (``None`` for zero), in ``space.searched_layers`` / candidate order."""

    fixed: tuple[LayerKey, ...]
    searched: tuple[tuple[LayerKey | None, ...], ...]

    def unique(self) -> list[LayerKey]:
        keys = set(self.fixed) | {k for layer in self.searched for k in layer if k is not None}
        return sorted(keys, key=lambda k: (KINDS.index(k.kind), -k.input[0], k.input[2], str(k)))


def block_key(space: SearchSpace, label: str, op: OpSpec, resolution: int | None = None) -> LayerKey | None:
    """Key of layer ``label`` running ``op`` (``None`` for zero)."""
    if op.is_zero:
        return None
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    layer = space.layer(label)
    shape = shapes[label]
    return LayerKey("mbconv", _hwc(shape.input), _hwc(shape.output), op.kernel_size,
                    op.expand_ratio, layer.stride, layer.residual_allowed)


def space_keys(space: SearchSpace, resolution: int | None = None) -> SpaceKeys:
    """All keys of ``space`` at ``resolution`` (default: the space's), from :func:`infer_shapes`."""
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    stem, head = shapes["stem"], shapes["head"]
    fixed = [LayerKey("stem", _hwc(stem.input), _hwc(stem.output), space.stem.kernel_size, 1,
                      space.stem.stride, False)]
    searched = []
    for layer in space.layers:
        shape = shapes[layer.label]
        keys = tuple(None if op.is_zero else
                     LayerKey("mbconv", _hwc(shape.input), _hwc(shape.output), op.kernel_size,
                              op.expand_ratio, layer.stride, layer.residual_allowed)
                     for op in layer.candidates)
        if layer.searchable:
            searched.append(keys)
        elif keys[0] is not None:
            fixed.append(keys[0])
    fixed.append(LayerKey("head", _hwc(head.input), _hwc(head.output), 1, 1, 1, False))
    fixed.append(LayerKey("classifier", _hwc(head.output), (1, 1, space.head.num_classes)))
    return SpaceKeys(tuple(fixed), tuple(searched))


def arch_keys(space: SearchSpace, arch: Arch, resolution: int | None = None) -> list[LayerKey]:
    """The keys of one architecture in chain order, fixed parts included, zero layers left out."""
    arch.validate(space)
    keys = space_keys(space, resolution)
    stem, head, classifier = keys.fixed[0], keys.fixed[-2], keys.fixed[-1]
    shapes = {s.label: s for s in infer_shapes(space, resolution)}
    body = []
    for layer, op in zip(space.layers, arch.ops(space)):
        if not op.is_zero:
            shape = shapes[layer.label]
            body.append(LayerKey("mbconv", _hwc(shape.input), _hwc(shape.output), op.kernel_size,
                                 op.expand_ratio, layer.stride, layer.residual_allowed))
    return [stem, *body, head, classifier]
