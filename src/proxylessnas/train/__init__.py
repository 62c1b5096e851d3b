"""Training: recipes, the train/eval loops, EMA, BN recalibration, checkpoints, resumable runs.

``proxyless train`` and ``proxyless eval`` are :mod:`proxylessnas.train.commands`.
"""

from proxylessnas.train.bn_recalibration import recalibrate_bn
from proxylessnas.train.checkpoint import (
           capture_rng_state,
           load_checkpoint,
           restore_rng_state,
           save_checkpoint,
)
from proxylessnas.train.ema import ModelEma
from proxylessnas.train.loops import EvalResult, evaluate, make_optimizer, parameter_groups, train_one_epoch
from proxylessnas.train.recipe import (
           TrainRecipe,
           cifar_recipe,
           default_recipe,
           imagenet_recipe,
           learning_rate,
)

__all__ = ["EvalResult", "ModelEma", "TrainRecipe", "capture_rng_state", "cifar_recipe", "default_recipe",
           "evaluate", "imagenet_recipe", "learning_rate", "load_checkpoint", "make_optimizer",
           "parameter_groups", "recalibrate_bn", "restore_rng_state", "save_checkpoint", "train_one_epoch"]
