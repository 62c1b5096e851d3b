"""What to train: a net from an arch JSON, a NAS-Bench-201 string, a zoo name, or the net a
search run derived.

Zoo nets are ImageNet-shaped (stride-2 stem, 224 input). For datasets of 64 pixels or less the
zoo name gives its **CIFAR-size variant**: the same ops and stage widths in the
``proxyless-cifar`` space (stem stride 1, stage strides (1, 2, 2, 1, 2, 1)), so a 32x32 input
ends at a 4x4 feature map instead of 1x1. Arch files keep their own space, rebuilt with the
dataset's classes, channels and resolution.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.config import net_config
from proxylessnas.nets.net import ProxylessNet, build_net
from proxylessnas.nets.pyramid_tree_zoo import TreeZooEntry
from proxylessnas.nets.zoo import ZOO, get_entry
from proxylessnas.runtime.checkpoint import load_checkpoint
from proxylessnas.space.arch import Arch, load_arch_or_string, read_json
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.nasbench201 import is_arch_string
from proxylessnas.space.presets import get_space
from proxylessnas.space.pyramid_tree import NAME as PYRAMID_TREE
from proxylessnas.space.spec import SearchSpace
from proxylessnas.train.recipe import SMALL_RESOLUTION


def zoo_net_for(name: str, num_classes: int, resolution: int, in_chs: int = 3,
                dropout: float | None = None) -> torch.nn.Module:
    """Zoo net ``name`` sized for the data; the CIFAR-size variant at <= 64 pixels (a
    ``pyramid-tree`` entry such as ``proxyless_cifar`` has one size for every resolution)."""
    entry = get_entry(name)
    if isinstance(entry, TreeZooEntry):
        space = entry.space(num_classes, resolution, in_chs=in_chs)
        return build_net(space, entry.arch(num_classes, resolution, in_chs=in_chs),
                         dropout=entry.dropout if dropout is None else dropout, name=name)
    family = "proxyless-cifar" if resolution <= SMALL_RESOLUTION else "proxyless-imagenet"
    space = entry.space(num_classes, resolution, family=family, in_chs=in_chs)
    arch = Arch.from_ops(space, entry.ops, metadata={"zoo": name})
    suffix = "_cifar" if family == "proxyless-cifar" else ""
    return ProxylessNet(net_config(space, arch, dropout=entry.dropout if dropout is None else dropout,
                                   name=name + suffix))


def space_for_data(arch: Arch, num_classes: int, resolution: int, in_chs: int) -> SearchSpace | GraphSpace:
    """The arch's space with the dataset's classes, resolution and channels."""
    overrides = {**arch.space_overrides, "num_classes": num_classes, "resolution": resolution,
                 "in_chs": in_chs}
    space = get_space(arch.space, **overrides)
    arch.validate(space)
    return space


def arch_net_for(arch: Arch, num_classes: int, resolution: int, in_chs: int = 3,
                 dropout: float | None = None, name: str = "") -> torch.nn.Module:
    """The standalone net of ``arch`` (chain or graph space) sized for the data."""
    space = space_for_data(arch, num_classes, resolution, in_chs)
    return build_net(space, arch, dropout=dropout, name=name)


def is_benchmark_cell(target: str) -> bool:
    """A NAS-Bench-201 cell (a benchmark string, or an arch file of the ``nasbench201`` space):
    ``proxyless train`` then uses the benchmark's own training recipe."""
    if is_arch_string(target):
        return True
    path = Path(target)
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("space") == "nasbench201"
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False  # a bad file gets its one-line error where it is loaded


def recipe_name_for(target: str) -> str | None:
    """The recipe preset a net picks by itself: ``nasbench201`` for a NAS-Bench-201 cell,
    ``pyramid-tree-cifar`` for a net of the ``pyramid-tree`` space (zoo ``proxyless_cifar``, or
    an arch file of that space); None: the dataset's default."""
    if is_benchmark_cell(target):
        return "nasbench201"
    if isinstance(ZOO.get(target), TreeZooEntry) or _arch_file_space(target) == PYRAMID_TREE:
        return "pyramid-tree-cifar"
    return None


def _arch_file_space(target: str) -> str | None:
    path = Path(target)
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("space")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None  # a bad file gets its one-line error where it is loaded


def target_name(target: str) -> str:
    """A file-name-safe name of a target: the zoo name, the arch file's stem, or
    ``nb201-<8 hex digits of the string's sha1>`` for a NAS-Bench-201 string."""
    if is_arch_string(target):
        import hashlib

        return "nb201-" + hashlib.sha1(target.strip().encode()).hexdigest()[:8]
    return Path(target).stem


def build_target(target: str, num_classes: int, resolution: int, in_chs: int = 3,
                 dropout: float | None = None) -> tuple[torch.nn.Module, dict]:
    """(net, description) for ``target``: a zoo name, the path of an arch JSON file or a
    NAS-Bench-201 string (``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``)."""
    if target in ZOO:
        net = zoo_net_for(target, num_classes, resolution, in_chs, dropout)
        return net, {"kind": "zoo", "name": target}
    if not is_arch_string(target) and not Path(target).exists():
        raise ProxylessError(f"'{target}' is neither a zoo name nor a file", "target",
                             f"give an arch JSON file, a NAS-Bench-201 string or one of {', '.join(ZOO)}")
    arch = load_arch_or_string(target)
    net = arch_net_for(arch, num_classes, resolution, in_chs, dropout, name=target_name(target))
    source = {"string": target.strip()} if is_arch_string(target) else {"path": str(target)}
    return net, {"kind": "arch", **source, "arch": arch.to_dict()}


def load_search_init(run_dir: str | os.PathLike, num_classes: int, resolution: int, in_chs: int = 3,
                     dropout: float | None = None) -> tuple[torch.nn.Module, Arch]:
    """The standalone net a search run derived, with the weights it inherited.

    Reads ``RUN_DIR/checkpoint.pt``. Two layouts are understood:
    - ``{"arch": arch.to_dict(), "child_state_dict": {...}}``: the derived net's weights;
    - a supernet checkpoint ``{"supernet": state_dict}`` (or ``"model"``), with the arch from the
      checkpoint's ``"arch"`` or ``RUN_DIR/arch.json``: the supernet is rebuilt and
      ``derive(arch, inherit=True)`` gives the child.
    The dataset must match the search's (classes, resolution, channels): the weights are shaped
    by it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ProxylessError("search run folder not found", str(run_dir), "give the --out folder of a search")
    state = load_checkpoint(run_dir / "checkpoint.pt")
    if isinstance(state.get("arch"), dict):
        arch = Arch.from_dict(state["arch"], str(run_dir / "checkpoint.pt"))
    else:
        arch = Arch.from_dict(read_json(run_dir / "arch.json", "arch file"), str(run_dir / "arch.json"))
    space = space_for_data(arch, num_classes, resolution, in_chs)
    net = build_net(space, arch, dropout=dropout, name=run_dir.name)
    where = str(run_dir / "checkpoint.pt")
    if isinstance(state.get("child_state_dict"), dict):
        child_state = state["child_state_dict"]
    else:
        supernet_state = state.get("supernet", state.get("model"))
        if not isinstance(supernet_state, dict):
            raise ProxylessError("checkpoint has neither child_state_dict nor a supernet state", where,
                                 "give the folder of a proxyless search run")
        try:
            from proxylessnas.supernet import SuperNet
        except ImportError:
            raise ProxylessError("this install has no supernet to derive from", where,
                                 "save child_state_dict in the run's checkpoint") from None
        supernet = SuperNet(space, num_classes=num_classes)
        _load_exact(supernet, supernet_state, where)
        child_state = supernet.derive(arch, inherit=True).state_dict()
    _load_exact(net, child_state, where)
    return net, arch


def _load_exact(module: torch.nn.Module, state: dict, where: str) -> None:
    own = module.state_dict()
    mismatched = sorted(set(own) ^ set(state)) or [k for k in own if own[k].shape != state[k].shape]
    if mismatched:
        raise ProxylessError(f"weights do not fit the net (first difference: {mismatched[0]})", where,
                             "use the same dataset (classes, resolution, channels) as the search")
    module.load_state_dict(state)
