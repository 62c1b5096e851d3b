"""Typed, frozen descriptions of a search space.

A :class:`SearchSpace` is a chain: stem conv, a list of :class:`LayerSpec` blocks, head
(1x1 conv, global pool, classifier). A layer with one candidate is fixed; a layer with two or
more candidates is searched. Spaces are plain data; modules are built from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.space.ops import HEAD_CONV, ClassifierOp, HeadConvOp, OpSpec, StemOp, parse_op

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StemSpec:
    """kxk conv + BN + ReLU6 from the image channels to ``out_chs``."""

    in_chs: int
    out_chs: int
    kernel_size: int = 3
    stride: int = 2

    @property
    def op(self) -> StemOp:
        return StemOp(self.kernel_size)


@dataclass(frozen=True)
class LayerSpec:
    """One block of the chain and the ops it may take."""

    label: str
    in_chs: int
    out_chs: int
    stride: int
    candidates: tuple[OpSpec, ...]

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ProxylessError("layer has no candidates", self.label, "give at least one op")
        for op in self.candidates:
            if op.is_zero and not self.residual_allowed:
                raise ProxylessError(
                    "'zero' is only legal where stride is 1 and in == out channels", self.label,
                    "remove 'zero' from this layer's candidates")

    @property
    def searchable(self) -> bool:
        return len(self.candidates) > 1

    @property
    def residual_allowed(self) -> bool:
        """An identity shortcut (and the zero op) exist only where the shape is unchanged."""
        return self.stride == 1 and self.in_chs == self.out_chs

    def index(self, op: OpSpec) -> int:
        return self.candidates.index(op)


@dataclass(frozen=True)
class HeadSpec:
    """1x1 conv ``in_chs -> out_chs`` + BN + ReLU6, global average pool, dropout, linear."""

    in_chs: int
    out_chs: int
    num_classes: int
    dropout: float = 0.0

    @property
    def conv_op(self) -> HeadConvOp:
        """The 1x1 conv ``in_chs -> out_chs``."""
        return HEAD_CONV

    @property
    def classifier_op(self) -> ClassifierOp:
        """Pool, dropout, linear ``out_chs -> num_classes``."""
        return ClassifierOp(self.dropout)


@dataclass(frozen=True)
class BNSpec:
    momentum: float = 0.1
    eps: float = 1e-3


@dataclass(frozen=True)
class SearchSpace:
    """A named chain of layers; ``overrides`` records how the preset was customised."""

    name: str
    resolution: int
    stem: StemSpec
    layers: tuple[LayerSpec, ...]
    head: HeadSpec
    bn: BNSpec = BNSpec()
    overrides: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        labels = [layer.label for layer in self.layers]
        if len(set(labels)) != len(labels):
            raise ProxylessError("duplicate layer labels", self.name, "give each layer its own label")
        chs = self.stem.out_chs
        for layer in self.layers:
            if layer.in_chs != chs:
                raise ProxylessError(f"layer expects {layer.in_chs} input channels, gets {chs}",
                                     f"{self.name}: {layer.label}", "make the widths chain")
            chs = layer.out_chs
        if self.head.in_chs != chs:
            raise ProxylessError(f"head expects {self.head.in_chs} channels, gets {chs}",
                                 self.name, "make the head width match the last layer")

    @property
    def in_chs(self) -> int:
        """Image channels (as ``GraphSpace.in_chs``)."""
        return self.stem.in_chs

    @property
    def searched_layers(self) -> tuple[LayerSpec, ...]:
        return tuple(layer for layer in self.layers if layer.searchable)

    @property
    def decisions(self) -> tuple[LayerSpec, ...]:
        """The searched layers: a chain is the graph whose every decision has one edge."""
        return self.searched_layers

    @property
    def fixed_layers(self) -> tuple[LayerSpec, ...]:
        return tuple(layer for layer in self.layers if not layer.searchable)

    @property
    def num_candidate_slots(self) -> int:
        """Number of architecture parameters (one logit per candidate of each searched layer)."""
        return sum(len(layer.candidates) for layer in self.searched_layers)

    @property
    def num_architectures(self) -> int:
        return math.prod(len(layer.candidates) for layer in self.searched_layers)

    def layer(self, label: str) -> LayerSpec:
        for layer in self.layers:
            if layer.label == label:
                return layer
        raise ProxylessError(f"no layer '{label}'", self.name,
                             f"use one of {', '.join(layer.label for layer in self.layers)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "overrides": dict(self.overrides),
            "resolution": self.resolution,
            "stem": vars(self.stem).copy(),
            "layers": [
                {"label": layer.label, "in_chs": layer.in_chs, "out_chs": layer.out_chs,
                 "stride": layer.stride, "candidates": [op.token for op in layer.candidates]}
                for layer in self.layers
            ],
            "head": vars(self.head).copy(),
            "bn": vars(self.bn).copy(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "space") -> SearchSpace:
        try:
            version = data.get("schema_version")
            if version != SCHEMA_VERSION:
                raise ProxylessError(f"unsupported space schema_version {version!r}", where,
                                     f"this version reads schema_version {SCHEMA_VERSION}")
            layers = tuple(
                LayerSpec(d["label"], int(d["in_chs"]), int(d["out_chs"]), int(d["stride"]),
                          tuple(parse_op(t, f"{where}: {d['label']}") for t in d["candidates"]))
                for d in data["layers"])
            return cls(name=data["name"], resolution=int(data["resolution"]),
                       stem=StemSpec(**data["stem"]), layers=layers, head=HeadSpec(**data["head"]),
                       bn=BNSpec(**data.get("bn", {})), overrides=dict(data.get("overrides", {})))
        except (KeyError, TypeError, ValueError) as err:
            raise ProxylessError(f"malformed space description ({err})", where,
                                 "write it with SearchSpace.to_dict()") from None
