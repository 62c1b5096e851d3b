"""``NetConfig``: the typed, versioned description of a standalone network.

A net config is what a deployable module is rebuilt from; it is derived from (space, arch):
zero blocks are dropped, every other block keeps its op and gets an identity shortcut where
stride is 1 and in == out channels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from proxylessnas import arguments as kinds
from proxylessnas.errors import ProxylessError
from proxylessnas.space.arch import Arch
from proxylessnas.space.ops import MBConvOp
from proxylessnas.space.spec import LayerSpec, SearchSpace

NET_SCHEMA_VERSION = 1
NET_KIND = "proxylessnas.net"
NET_KINDS = {"resolution": kinds.resolution, "in_chs": kinds.channels, "stem_chs": kinds.channels,
             "stem_kernel": kinds.kernel_size, "stem_stride": kinds.stride, "head_chs": kinds.channels,
             "num_classes": kinds.num_classes, "dropout": kinds.rate, "bn_momentum": kinds.unit_interval,
             "bn_eps": kinds.positive_float}
BLOCK_KINDS = {"in_chs": kinds.channels, "out_chs": kinds.channels, "kernel_size": kinds.kernel_size,
               "expand_ratio": kinds.expand_ratio, "stride": kinds.stride, "residual": kinds.boolean}


def check_config_header(data: Any, kind: str, version: int, what: str, writer: str, where: str) -> None:
    """Refuse anything but a ``{"kind": kind, "schema_version": version, ...}`` mapping."""
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise ProxylessError(f"not a proxylessnas {what} config", where, f"give a config written by {writer}")
    if data.get("schema_version") != version:
        raise ProxylessError(f"unsupported {what} schema_version {data.get('schema_version')!r}",
                             where, f"this version reads schema_version {version}")


@dataclass(frozen=True)
class BlockConfig:
    """One MBConv block of the reference release's net-config format (its fields are the op's)."""

    label: str
    in_chs: int
    out_chs: int
    kernel_size: int
    expand_ratio: int
    stride: int
    residual: bool

    @property
    def op(self) -> MBConvOp:
        return MBConvOp(self.kernel_size, self.expand_ratio)

    @classmethod
    def of(cls, layer: LayerSpec, op: MBConvOp) -> BlockConfig:
        """Layer ``layer`` running ``op``, with the identity shortcut where the layer has one."""
        return cls(layer.label, layer.in_chs, layer.out_chs, op.kernel_size, op.expand_ratio, layer.stride,
                   layer.residual_allowed)


@dataclass(frozen=True)
class NetConfig:
    resolution: int
    in_chs: int
    stem_chs: int
    stem_kernel: int
    stem_stride: int
    blocks: tuple[BlockConfig, ...]
    head_chs: int
    num_classes: int
    dropout: float = 0.0
    bn_momentum: float = 0.1
    bn_eps: float = 1e-3
    name: str = ""

    @property
    def feature_chs(self) -> int:
        return self.blocks[-1].out_chs if self.blocks else self.stem_chs

    def op_labels(self) -> list[str]:
        """``label:token`` of every block, e.g. ``s1.b0:mb_k5_e3``."""
        return [f"{b.label}:{b.op.token}" for b in self.blocks]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["blocks"] = [asdict(b) for b in self.blocks]
        return {"kind": NET_KIND, "schema_version": NET_SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Any, where: str = "net config") -> NetConfig:
        """The config in ``data``, every field checked against its kind and the blocks chained."""
        check_config_header(data, NET_KIND, NET_SCHEMA_VERSION, "net", "ProxylessNet.config()", where)
        fields = {k: v for k, v in data.items() if k not in ("kind", "schema_version")}
        try:
            blocks = fields["blocks"]
            if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
                raise TypeError("'blocks' is not a list of objects")
            fields["blocks"] = tuple(BlockConfig(**b) for b in fields["blocks"])
            config = cls(**fields)
        except (KeyError, TypeError) as err:
            raise ProxylessError(f"malformed net config ({err})", where,
                                 "write it with ProxylessNet.config()") from None
        config.check(where)
        return config

    def check(self, where: str) -> None:
        """Raise a one-line error unless every size is of its kind and each block takes the channels the
        one before gives."""
        for name, kind in NET_KINDS.items():
            kind.check(getattr(self, name), where, name)
        if not isinstance(self.name, str):
            raise ProxylessError(f"name={self.name!r} is not a string", where, "give the net a text name")
        chs = self.stem_chs
        for block in self.blocks:
            for name, kind in BLOCK_KINDS.items():
                kind.check(getattr(block, name), where, f"{block.label}.{name}")
            if block.in_chs != chs:
                raise ProxylessError(f"block {block.label} takes {block.in_chs} channels, gets {chs}", where,
                                     "write the config with ProxylessNet.config()")
            if block.residual and not (block.stride == 1 and block.in_chs == block.out_chs):
                raise ProxylessError(f"block {block.label} has a shortcut across a change of shape", where,
                                     "write the config with ProxylessNet.config()")
            chs = block.out_chs


def net_config(space: SearchSpace, arch: Arch, num_classes: int | None = None,
               dropout: float | None = None, name: str = "") -> NetConfig:
    """The standalone net of ``arch`` in ``space`` (zero blocks dropped, legal residuals)."""
    arch.validate(space)
    blocks = [BlockConfig.of(layer, op) for layer, op in zip(space.layers, arch.ops(space)) if not op.is_zero]
    return NetConfig(
        resolution=space.resolution, in_chs=space.stem.in_chs, stem_chs=space.stem.out_chs,
        stem_kernel=space.stem.kernel_size, stem_stride=space.stem.stride, blocks=tuple(blocks),
        head_chs=space.head.out_chs,
        num_classes=space.head.num_classes if num_classes is None else num_classes,
        dropout=space.head.dropout if dropout is None else dropout,
        bn_momentum=space.bn.momentum, bn_eps=space.bn.eps, name=name)
