"""The model zoo: the published ProxylessNAS nets and the MobileNetV2 baseline.

Each ImageNet entry is an arch in the paper's space (``proxyless-imagenet``) with the published
net's own widths; the ops are listed per searched layer s1.b0 .. s6.b0 (21 layers). The CIFAR-10
model ``proxyless_cifar`` is an arch of the ``pyramid-tree`` graph space
(``nets/pyramid_tree_zoo.py``); every entry has ``space``, ``arch``, ``net_config`` and its
default classes and resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.config import NetConfig, net_config
from proxylessnas.nets.graph_net import GraphNet
from proxylessnas.nets.net import ProxylessNet
from proxylessnas.nets.pyramid_tree_zoo import PROXYLESS_CIFAR, TreeZooEntry
from proxylessnas.ops.blocks import make_divisible
from proxylessnas.space.arch import Arch
from proxylessnas.space.presets import get_space
from proxylessnas.space.spec import SearchSpace

Z = "zero"
_MOBILE_OPS = (
    "mb_k5_e3", "mb_k3_e3", Z, Z,
    "mb_k7_e3", "mb_k3_e3", "mb_k5_e3", "mb_k5_e3",
    "mb_k7_e6", "mb_k5_e3", "mb_k5_e3", "mb_k5_e3",
    "mb_k5_e6", "mb_k5_e3", "mb_k5_e3", "mb_k5_e3",
    "mb_k7_e6", "mb_k7_e6", "mb_k7_e3", "mb_k7_e3",
    "mb_k7_e6",
)
_CPU_OPS = (
    "mb_k3_e6", "mb_k3_e3", "mb_k3_e3", "mb_k3_e3",
    "mb_k3_e6", "mb_k3_e3", "mb_k3_e3", "mb_k5_e3",
    "mb_k3_e6", Z, Z, "mb_k3_e3",
    "mb_k5_e6", "mb_k3_e3", "mb_k3_e3", "mb_k3_e3",
    "mb_k5_e6", "mb_k5_e3", "mb_k5_e3", "mb_k3_e3",
    "mb_k5_e6",
)
_GPU_OPS = (
    "mb_k5_e3", Z, Z, Z,
    "mb_k7_e3", Z, Z, "mb_k3_e3",
    "mb_k7_e6", Z, Z, "mb_k5_e3",
    "mb_k5_e6", Z, "mb_k3_e3", "mb_k5_e3",
    "mb_k7_e6", "mb_k7_e6", "mb_k7_e6", "mb_k5_e6",
    "mb_k7_e6",
)
# MobileNetV2 1.0: stage depths (2, 3, 4, 3, 3, 1) of k3 e6 blocks; the unused blocks are zero.
_MBV2_OPS = tuple(
    "mb_k3_e6" if block < depth else Z
    for depth, blocks in zip((2, 3, 4, 3, 3, 1), (4, 4, 4, 4, 4, 1)) for block in range(blocks)
)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    ops: tuple[str, ...]
    space_overrides: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.0
    published: dict[str, float] = field(default_factory=dict)
    default_num_classes: int = 1000
    default_resolution: int = 224

    def widths(self, width_mult: float = 1.0) -> dict[str, Any]:
        """The entry's widths (stem, first block, stages, head) scaled as MobileNetV2 scales its
        own: ``make_divisible(c * width_mult, 8)``, the head kept as it is below width 1 (the rule
        of the ``proxyless-imagenet`` preset's ``width_mult``)."""
        if width_mult == 1.0:
            return dict(self.space_overrides)
        base = self.space_overrides
        head = base["head_width"] if width_mult <= 1.0 else make_divisible(base["head_width"] * width_mult, 8)
        return _widths(make_divisible(base["stem_width"] * width_mult, 8),
                       make_divisible(base["first_width"] * width_mult, 8),
                       tuple(make_divisible(c * width_mult, 8) for c in base["stage_widths"]), head)

    def space(self, num_classes: int = 1000, resolution: int = 224, *, width_mult: float = 1.0,
              family: str = "proxyless-imagenet", **options: Any) -> SearchSpace:
        """The entry's space: ``family`` (``proxyless-cifar`` for the CIFAR-size variant) with the
        entry's widths at ``width_mult`` (:meth:`widths`) and any other preset ``options``."""
        return get_space(family, num_classes=num_classes, resolution=resolution, **options,
                         **self.widths(width_mult))

    def arch(self, num_classes: int = 1000, resolution: int = 224, *, width_mult: float = 1.0,
             family: str = "proxyless-imagenet", **options: Any) -> Arch:
        """The entry's ops in :meth:`space` (metadata: the zoo name, and a width other than 1)."""
        metadata = {"zoo": self.name, **({"width_mult": width_mult} if width_mult != 1.0 else {})}
        space = self.space(num_classes, resolution, width_mult=width_mult, family=family, **options)
        return Arch.from_ops(space, self.ops, metadata=metadata)

    def net_config(self, num_classes: int = 1000, resolution: int = 224) -> NetConfig:
        space = self.space(num_classes, resolution)
        return net_config(space, self.arch(num_classes, resolution), dropout=self.dropout,
                          name=self.name)


def _widths(stem: int, first: int, stages: tuple[int, ...], head: int) -> dict[str, Any]:
    return {"stem_width": stem, "first_width": first, "stage_widths": list(stages),
            "head_width": head}


ZOO: dict[str, ZooEntry | TreeZooEntry] = {e.name: e for e in (
    ZooEntry("proxyless_mobile", "searched for a Pixel 1 phone (78 ms)", _MOBILE_OPS,
             _widths(32, 16, (32, 40, 80, 96, 192, 320), 1280), 0.1,
             {"params_m": 4.08, "macs_m": 320.4, "top1": 74.59, "top5": 92.20}),
    ZooEntry("proxyless_mobile_14", "proxyless_mobile at about 1.4x width", _MOBILE_OPS,
             _widths(48, 24, (40, 56, 112, 136, 256, 448), 1792), 0.3,
             {"params_m": 6.86, "macs_m": 580.9, "top1": 76.7, "top5": 93.3}),
    ZooEntry("proxyless_cpu", "searched for a CPU (138.7 ms, batch 1)", _CPU_OPS,
             _widths(40, 24, (32, 48, 88, 104, 216, 360), 1432), 0.2,
             {"params_m": 4.36, "macs_m": 439.2, "top1": 75.29, "top5": 92.39}),
    ZooEntry("proxyless_gpu", "searched for a GPU (5.1 ms, batch 8)", _GPU_OPS,
             _widths(40, 24, (32, 56, 112, 128, 256, 432), 1728), 0.3,
             {"params_m": 7.12, "macs_m": 465.3, "top1": 75.08, "top5": 92.54}),
    ZooEntry("mobilenet_v2", "MobileNetV2 1.0 baseline: k3 e6 blocks on the paper backbone",
             _MBV2_OPS, _widths(32, 16, (24, 32, 64, 96, 160, 320), 1280), 0.2,
             {"params_m": 3.5, "macs_m": 300.0, "top1": 72.0}),
    PROXYLESS_CIFAR,
)}


def get_entry(name: str) -> ZooEntry | TreeZooEntry:
    if name not in ZOO:
        raise ProxylessError(f"unknown zoo model '{name}'", "zoo",
                             f"use one of {', '.join(ZOO)} (see 'proxyless zoo list')")
    return ZOO[name]


def list_models() -> list[str]:
    return list(ZOO)


def create(name: str, num_classes: int | None = None, pretrained_path: str | None = None,
           resolution: int | None = None) -> ProxylessNet | GraphNet:
    """A zoo net, optionally with weights from a local file (safetensors or a reference
    checkpoint; loaded with ``weights_only=True``). Classes and resolution default to the
    entry's (1000 and 224 for the ImageNet nets, 10 and 32 for ``proxyless_cifar``)."""
    entry = get_entry(name)
    num_classes, resolution = num_classes or entry.default_num_classes, resolution or entry.default_resolution
    if isinstance(entry, TreeZooEntry):
        model = entry.create(num_classes, resolution)
    else:
        model = ProxylessNet(entry.net_config(num_classes, resolution))
    if pretrained_path is not None:
        from proxylessnas.nets.weights import load_weights

        load_weights(model, pretrained_path)
    return model
