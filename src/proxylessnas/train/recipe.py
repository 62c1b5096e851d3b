"""``TrainRecipe``: every training hyper-parameter, with CIFAR-size and ImageNet-size defaults.

The ImageNet-size defaults are the paper's retraining recipe (PAPER.md section 4): SGD with
Nesterov momentum 0.9, learning rate 0.05 for batch 256 with a cosine decay, weight decay 4e-5
(none on BatchNorm and biases), label smoothing 0.1, 300 epochs. The paper gives no warm-up for
retraining; we add a short linear warm-up (5 epochs) because it makes the first steps of a
fresh net stable at this learning rate.

The CIFAR-size defaults (input <= 64 pixels) scale it to 50k small images: 200 epochs, batch
128, learning rate 0.1 (the paper's 0.05 is for batch 256 on 1.28M images; small-image nets
train best at the usual CIFAR rate), weight decay 5e-4 (4e-5 under-regularises 50k images),
1 warm-up epoch; label smoothing, Nesterov and the no-decay groups stay as in the paper. Every
field can be overridden by ``key=value``.

Named presets (:data:`RECIPES`, ``proxyless train --recipe NAME``): ``imagenet``, ``cifar``,
``demo``, ``nasbench201`` and ``pyramid-tree-cifar`` (the paper's CIFAR-10 model,
:func:`pyramid_tree_cifar_recipe`, with cutout and drop-path fields).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from proxylessnas.arguments import (
    Kind,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    rate,
    seed,
)
from proxylessnas.errors import ProxylessError
from proxylessnas.overrides import convert, parse_overrides

SMALL_RESOLUTION = 64  # datasets at or below this use the CIFAR-size recipe and nets
FIELD_KINDS: dict[str, Kind] = {  # the kind of every numeric field (None passes where the field allows it)
    "epochs": positive_int, "batch_size": positive_int, "lr": positive_float,
    "warmup_epochs": non_negative_float, "momentum": rate, "weight_decay": non_negative_float,
    "label_smoothing": rate, "dropout": rate, "ema_decay": rate, "eval_batch_size": positive_int,
    "seed": seed, "grad_clip_norm": non_negative_float, "cutout": non_negative_int, "drop_path": rate,
}
DROP_PATH_SCHEDULES = ("constant", "linear")
ADDED_FIELDS = {"cutout": 0, "drop_path": 0.0, "drop_path_schedule": "constant"}
"""Fields newer than the first runs: a saved recipe without them had these values."""
# may change on a resume (recorded in the run's config history): they do not change the run's shape
# (epochs, batch size, seed, dropout and EMA do; the learning rate is a function of the step)
RESUMABLE_FIELDS = frozenset({"lr", "warmup_epochs", "momentum", "nesterov", "weight_decay",
                              "label_smoothing", "grad_clip_norm", "eval_batch_size", "amp",
                              "channels_last", "compile"})


@dataclass(frozen=True)
class TrainRecipe:
    """Hyper-parameters of one training run (see the module docstring for the defaults)."""

    epochs: int = 300
    batch_size: int = 256
    lr: float = 0.05
    warmup_epochs: float = 5.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    dropout: float | None = None  # None: the net's own (zoo nets: 0.1..0.3, PAPER.md section 4)
    ema_decay: float = 0.0  # 0 disables the exponential moving average of the weights
    eval_batch_size: int = 512
    amp: bool = True  # mixed precision (bfloat16/float16 autocast), CUDA only
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile the model
    seed: int = 0
    grad_clip_norm: float = 0.0  # 0 disables clipping
    cutout: int = 0  # side of the cut-out square in pixels (DeVries & Taylor 2017); 0: off
    drop_path: float = 0.0  # drop-path rate of the net's drop-path units (GraphNet); 0: off
    drop_path_schedule: str = "constant"  # constant, or linear from 0 to drop_path over the run

    def __post_init__(self) -> None:
        for name, kind in FIELD_KINDS.items():
            value = getattr(self, name)
            if value is not None and not kind.accepts(value):
                raise ProxylessError(f"invalid recipe value {name}={value!r}", "recipe",
                                     f"give {kind.description}")
        if self.drop_path_schedule not in DROP_PATH_SCHEDULES:
            raise ProxylessError(f"invalid recipe value drop_path_schedule={self.drop_path_schedule!r}",
                                 "recipe", f"give one of {', '.join(DROP_PATH_SCHEDULES)}")
        if self.warmup_epochs > self.epochs:
            raise ProxylessError(f"invalid recipe value warmup_epochs={self.warmup_epochs!r}", "recipe",
                                 f"give at most epochs={self.epochs} warm-up epochs")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "recipe") -> TrainRecipe:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ProxylessError(f"unknown recipe key(s) {', '.join(unknown)}", where,
                                 f"use any of {', '.join(sorted(names))}")
        return cls(**data)

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> TrainRecipe:
        """A copy with ``{field: value}`` or ``["field=value", ...]`` applied: values parsed as YAML
        scalars (:func:`~proxylessnas.overrides.parse_overrides`, as every command's overrides),
        then converted to the field's type (:func:`~proxylessnas.overrides.convert`) and checked."""
        if isinstance(overrides, list):
            overrides = parse_overrides(overrides, example="lr=0.1")
        kinds = {f.name: f.type for f in fields(self)}
        hints = typing.get_type_hints(type(self))
        clean = {}
        for key, value in overrides.items():
            if key not in kinds:
                raise ProxylessError(f"unknown recipe key '{key}'", "overrides",
                                     f"use any of {', '.join(sorted(kinds))}")
            try:
                clean[key] = convert(value, hints[key])
            except ValueError:
                raise ProxylessError(f"bad value '{value}' for recipe key '{key}'", "overrides",
                                     f"give a {str(kinds[key]).split(' ')[0]}") from None
        return replace(self, **clean)


def imagenet_recipe() -> TrainRecipe:
    """The paper's retraining recipe (PAPER.md section 4) plus a 5-epoch linear warm-up."""
    return TrainRecipe()


def cifar_recipe() -> TrainRecipe:
    """The paper's recipe scaled to 32x32 images (see the module docstring)."""
    return TrainRecipe(epochs=200, batch_size=128, lr=0.1, warmup_epochs=1.0, weight_decay=5e-4,
                       eval_batch_size=1000)


def demo_recipe() -> TrainRecipe:
    """The bundled ``demo`` dataset (5,000 Fashion-MNIST images): the CIFAR-size recipe cut to
    10 epochs, so the README's train step takes minutes on a laptop CPU."""
    return replace(cifar_recipe(), epochs=10)


def nasbench201_recipe() -> TrainRecipe:
    """The NAS-Bench-201 standalone training (Dong & Yang, ICLR 2020): SGD Nesterov 0.9, lr 0.1
    with cosine decay, weight decay 5e-4, batch 256, 200 epochs, no label smoothing (random crop
    and flip come with the CIFAR data pipeline), so a table entry can be reproduced."""
    return TrainRecipe(epochs=200, batch_size=256, lr=0.1, warmup_epochs=0.0, weight_decay=5e-4,
                       label_smoothing=0.0, eval_batch_size=1000)


def pyramid_tree_cifar_recipe() -> TrainRecipe:
    """The CIFAR-10 training of the paper's tree-cell PyramidNet (``proxyless_cifar``).

    - ProxylessNAS (Cai et al., ICLR 2019), Table 1: 2.08 % with 5.7M parameters, trained with
      cutout; we found no other training hyper-parameter of this model in the paper.
    - "Path-Level Network Transformation for Efficient Architecture Search" (Cai et al., ICML
      2018), whose TreeCell-A PyramidNet (N=18, alpha=84, 5.7M) the model is, Table 1: DropPath
      (Zoph et al. 2018) + Cutout (DeVries & Taylor 2017), 600 epochs (2.49 %).
    - Its released code (han-cai/PathLevel-EAS, code/CIFAR/run_pyramidnet.py and
      models/run_manager.py): batch 64, SGD with Nesterov momentum 0.9, weight decay 1e-4, lr 0.1
      with a per-step cosine decay to 0 and no warm-up, no label smoothing, one 16x16 cutout hole.
    - Not found: the drop-path rate (the release's net configs store ``path_drop_rate: 0``), so
      ``drop_path`` stays 0 here: give ``drop_path=RATE``.
    Ours decays no BN/bias parameters (the release decays all of them).
    """
    return TrainRecipe(epochs=600, batch_size=64, lr=0.1, warmup_epochs=0.0, momentum=0.9, nesterov=True,
                       weight_decay=1e-4, label_smoothing=0.0, eval_batch_size=1000, cutout=16,
                       drop_path=0.0, drop_path_schedule="constant", amp=True, channels_last=True)


RECIPES: dict[str, Callable[[], TrainRecipe]] = {
    "cifar": cifar_recipe, "imagenet": imagenet_recipe, "nasbench201": nasbench201_recipe,
    "demo": demo_recipe, "pyramid-tree-cifar": pyramid_tree_cifar_recipe,
}
"""The named presets of ``proxyless train --recipe NAME``."""


def named_recipe(name: str) -> TrainRecipe:
    """The preset ``name`` of :data:`RECIPES`; one line listing the names when unknown."""
    if name not in RECIPES:
        raise ProxylessError(f"unknown recipe '{name}'", "--recipe", f"use one of {', '.join(RECIPES)}")
    return RECIPES[name]()


def default_recipe(resolution: int, dataset_name: str | None = None) -> TrainRecipe:
    """The ``demo`` dataset's short recipe; otherwise CIFAR-size defaults for inputs up to 64
    pixels, ImageNet-size ones above."""
    if dataset_name == "demo":
        return demo_recipe()
    return cifar_recipe() if resolution <= SMALL_RESOLUTION else imagenet_recipe()


def learning_rate(recipe: TrainRecipe, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up then cosine decay, per step.

    lr(t) = lr * (t + 1) / T_w                                  for t < T_w
    lr(t) = lr * 0.5 * (1 + cos(pi * (t - T_w) / (T - T_w)))   otherwise,
    with T = epochs * steps_per_epoch and T_w = warmup_epochs * steps_per_epoch.
    """
    total = recipe.epochs * steps_per_epoch
    warmup = int(round(recipe.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def drop_path_rate(recipe: TrainRecipe, step: int, steps_per_epoch: int) -> float:
    """The drop-path rate at global step ``step``: ``drop_path`` (constant, as the Path-Level EAS
    release), or ScheduledDropPath (Zoph et al., CVPR 2018) rising linearly,
    p(t) = drop_path * t / T with T = epochs * steps_per_epoch."""
    if recipe.drop_path_schedule == "linear":
        return recipe.drop_path * min(1.0, step / max(1, recipe.epochs * steps_per_epoch))
    return recipe.drop_path
