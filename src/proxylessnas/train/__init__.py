"""Training: recipes, the train/eval loops, EMA, BN recalibration, resumable runs.

Checkpoints and the random state they hold are :mod:`proxylessnas.runtime.checkpoint`.

``proxyless train`` and ``proxyless eval`` are :mod:`proxylessnas.train.commands`.
"""

from proxylessnas.train.bn_recalibration import recalibrate_bn
from proxylessnas.train.ema import ModelEma
from proxylessnas.train.loops import EvalResult, evaluate, make_optimizer, parameter_groups, train_one_epoch
from proxylessnas.train.recipe import (
           TrainRecipe,
           cifar_recipe,
           default_recipe,
           imagenet_recipe,
           learning_rate,
)

__all__ = ["EvalResult", "ModelEma", "TrainRecipe", "cifar_recipe", "default_recipe", "evaluate",
           "imagenet_recipe", "learning_rate", "make_optimizer", "parameter_groups", "recalibrate_bn",
           "train_one_epoch"]
