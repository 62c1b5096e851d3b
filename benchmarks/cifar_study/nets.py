"""The study's nets, built by the library: the study space as the searches build it, searched
archs from their choices, MobileNetV2 baselines at a width, their MACs and parameters."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from cifar_study.settings import SEARCH_CONFIG, SPACE_ARGS

CIFAR10 = SimpleNamespace(num_classes=10, resolution=32, channels=3)  # what search_space reads of the data


def study_space(width_mult: float | None = None):
    """The study space exactly as ``proxyless search --config cifar10 SPACE_ARGS`` builds it for
    CIFAR-10 (same fingerprint, hence the same cached latency table); with ``width_mult``, the
    same backbone at another width."""
    from proxylessnas.search.build import search_space
    from proxylessnas.search.config import load_config

    overrides = [*SPACE_ARGS, *([f"space.width_mult={width_mult}"] if width_mult is not None else [])]
    return search_space(load_config(SEARCH_CONFIG, overrides), CIFAR10)


def searched_arch(space, choices: dict[str, str]):
    """The arch of a ``choices`` mapping (label -> op token) of ``space``."""
    from proxylessnas import Arch

    return Arch.from_ops(space, [choices[layer.label] for layer in space.searched_layers])


def mobilenet_v2_arch(width: float):
    """(space, arch) of mobilenet_v2's CIFAR-size variant at width multiplier ``width``: the zoo
    entry's ops (k3 e6 blocks, depths 2-3-4-3-3-1) in ``proxyless-cifar``, every width scaled as
    MobileNetV2 does (:meth:`proxylessnas.zoo.ZooEntry.widths`)."""
    from proxylessnas.zoo import get_entry

    entry = get_entry("mobilenet_v2")
    shape = {"num_classes": CIFAR10.num_classes, "resolution": CIFAR10.resolution, "width_mult": width,
             "family": "proxyless-cifar", "in_chs": CIFAR10.channels}
    return entry.space(**shape), entry.arch(**shape)


def backbone_mobilenet_v2_arch(width: float):
    """(space, arch): MobileNetV2's block (k3 e6) in every searched block of the study backbone
    (``proxyless-cifar``, depths 2-2-2-2-2-1) at width multiplier ``width`` (the study space is 0.5).

    The zoo net's own depths (18 blocks) are too slow for the study's targets in eager mode at any
    width (per-block overhead); this shallower MobileNetV2 reaches them."""
    from proxylessnas import Arch

    space = study_space(width)
    return space, Arch.from_ops(space, ["mb_k3_e6"] * len(space.searched_layers),
                                metadata={"baseline": "mobilenet_v2 blocks", "width_mult": width})


BASELINE_FAMILIES = {"mobilenet_v2": mobilenet_v2_arch, "mbv2_k3e6": backbone_mobilenet_v2_arch}


def baseline_nets(zoo_widths: Sequence[float], backbone_widths: Sequence[float]) -> dict[str, tuple]:
    """Name -> (space, arch) of every distinct baseline net: ``mobilenet_v2_w<w>``, ``mbv2_k3e6_w<w>``."""
    nets = {}
    for family, widths in (("mobilenet_v2", zoo_widths), ("mbv2_k3e6", backbone_widths)):
        for width in distinct_widths(widths, BASELINE_FAMILIES[family]):
            nets[f"{family}_w{width:g}"] = BASELINE_FAMILIES[family](width)
    return nets


def distinct_widths(widths: Sequence[float], build=mobilenet_v2_arch) -> list[float]:
    """Width multipliers that give different nets (channels are rounded to multiples of 8)."""
    seen, kept = set(), []
    for width in widths:
        space, _ = build(width)
        shape = tuple((layer.in_chs, layer.out_chs) for layer in space.layers) + (space.stem.out_chs,)
        if shape not in seen:
            seen.add(shape)
            kept.append(width)
    return kept


def macs_params(space, arch) -> tuple[float, float]:
    """(MMACs, M parameters) of the standalone net, counted analytically."""
    from proxylessnas.nets.config import net_config
    from proxylessnas.nets.profile import count_params_macs

    params, macs = count_params_macs(net_config(space, arch))
    return macs / 1e6, params / 1e6


def arch_character(choices: dict[str, str]) -> tuple[int, float, float]:
    """(searched blocks kept, mean kernel size, mean expand ratio) over the non-zero blocks."""
    from proxylessnas.space.ops import parse_op

    ops = [parse_op(token, label) for label, token in choices.items()]
    kept = [op for op in ops if not op.is_zero]
    if not kept:
        return 0, 0.0, 0.0
    return (len(kept), sum(op.kernel_size for op in kept) / len(kept),
            sum(op.expand_ratio for op in kept) / len(kept))
