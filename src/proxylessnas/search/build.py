"""The parts of a search, built from its config: the data and its batches, the space, the cost
profile, target and latency loss, the supernet, both optimisers, the strategy and the
path-sampling generator; and the parts' share of the checkpoint.

Built in a fixed order (the supernet's initial weights come from the global generator, after
everything that may draw from it), so that a run is a function of its config and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from proxylessnas.data import BatchIterator, Dataset, load_dataset, split_validation
from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.distributed import DistributedContext
from proxylessnas.runtime.resume_changes import keeping_hyperparameters
from proxylessnas.search.calibration import will_calibrate
from proxylessnas.search.config import SearchConfig
from proxylessnas.search.cost_profile import CostProfile
from proxylessnas.search.latency_loss import LatencyLoss
from proxylessnas.search.strategies import make_arch_optimizer, make_strategy
from proxylessnas.search.target import LatencyTarget
from proxylessnas.space import SearchSpace, get_space
from proxylessnas.supernet import DecisionSuperNet, build_supernet


@dataclass
class SearchData:
    """Weights train on ``train_part``, the architecture on ``valid_part`` (``valid_batches`` in
    steps, ``valid_eval`` for the argmax path's accuracy, its epoch 0 the same batches every
    time); the test set only reports. Under DDP
    each rank takes its shard of both splits; the batch sizes are per rank."""

    dataset: Dataset
    train_part: Any
    train_batches: Any
    valid_batches: Any
    valid_eval: BatchIterator


def build_data(config: SearchConfig, dataset: Dataset | None, context: DistributedContext,
               device: torch.device) -> SearchData:
    """The config's dataset (unless one is given), split and batched; too few images is an error."""
    seed, data = config.run.seed, config.data
    if dataset is None:
        dataset = load_dataset(data.dataset, resolution=data.resolution, limit_per_class=data.limit_per_class)
    valid_size = int(data.valid_size) if data.valid_size >= 1 else float(data.valid_size)
    train_part, valid_part = split_validation(dataset, valid_size, seed=seed)
    train_batches = context.shard(BatchIterator.for_dataset(
        dataset, train_part, data.batch_size, augment=data.augment, seed=seed, drop_last=True,
        device=device))
    valid_batches = context.shard(BatchIterator.for_dataset(
        dataset, valid_part, data.valid_batch_size, augment=False, seed=seed + 1, drop_last=True,
        device=device))
    # one fixed order, classes mixed: the accuracy uses batch statistics, which a batch of one
    # class would wipe out (the split is sorted by class)
    valid_eval = BatchIterator.for_dataset(dataset, valid_part, data.eval_batch_size, augment=False,
                                           seed=seed + 2, device=device)
    if len(train_batches) == 0 or len(valid_batches) == 0:
        raise ProxylessError(f"too few images for batch sizes {data.batch_size}/{data.valid_batch_size}",
                             dataset.summary(),
                             "lower data.batch_size / data.valid_batch_size or use more images")
    return SearchData(dataset, train_part, train_batches, valid_batches, valid_eval)


def search_space(config: SearchConfig, dataset: Dataset) -> SearchSpace:
    """The preset named in the config, sized for the dataset (classes, resolution, channels)."""
    options = dict(config.space.options)
    for key in ("num_classes", "resolution", "in_chs"):
        if key in options:
            raise ProxylessError(f"space.{key} is set by the dataset", "search config",
                                 f"remove space.{key} (use data.resolution to resize the images)")
    return get_space(config.space.name, num_classes=dataset.num_classes, resolution=dataset.resolution,
                     in_chs=dataset.channels, **options)


def make_cost_model(config: SearchConfig, space: SearchSpace, progress: bool):
    from proxylessnas.hardware.targets import get_cost_model

    hardware = config.hardware
    return get_cost_model(hardware.target, space, batch_size=hardware.batch_size, threads=hardware.threads,
                          progress=progress, allow_mismatch=hardware.allow_mismatch)


def build_latency(config: SearchConfig, space: SearchSpace,
                  cost_model: Any) -> tuple[CostProfile, LatencyTarget, LatencyLoss]:
    """Profile, target and loss; an impossible target is refused here, before any training (with
    calibration, an explicit target in ms once the calibration has put it into table units)."""
    latency = config.latency
    profile = CostProfile(space, cost_model)
    target = LatencyTarget(profile, mode=latency.mode, target=latency.target,
                           target_position=latency.target_position, tolerance=latency.tolerance,
                           check_now=not will_calibrate(config))
    loss = LatencyLoss(profile, target, loss_name=latency.loss, loss_params=latency.loss_params,
                       step_size=latency.step_size, initial_weight=latency.initial_weight,
                       max_weight=latency.max_weight, controller_cost=latency.controller_cost)
    return profile, target, loss


def weight_optimizer(supernet: DecisionSuperNet, config: SearchConfig) -> torch.optim.SGD:
    """SGD (Nesterov) on the weights; no weight decay on BatchNorm and biases (1-D tensors)."""
    weights = config.weights
    params = supernet.weight_parameters()
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weights.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=weights.lr, momentum=weights.momentum, nesterov=weights.nesterov)


@dataclass
class SearchParts:
    """What a search trains and steers, with its share of the checkpoint."""

    supernet: DecisionSuperNet
    weights_optimizer: torch.optim.SGD
    arch_optimizer: torch.optim.Adam
    strategy: Any
    profile: CostProfile
    target: LatencyTarget
    latency: LatencyLoss
    sampler: torch.Generator  # path sampling; seeded alike on every rank: every rank runs the same paths

    def state_dict(self) -> dict[str, Any]:
        return {"arch": self.supernet.export().to_dict(), "supernet": self.supernet.state_dict(),
                "weight_optimizer": self.weights_optimizer.state_dict(),
                "strategy": self.strategy.state_dict(),
                "objective": {**self.latency.state_dict(), **self.target.state_dict()},
                "sampler": self.sampler.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The parts' state from a checkpoint; the optimisers keep the config's hyperparameters
        (a resume may change learning rates, betas, ...)."""
        self.supernet.load_state_dict(state["supernet"])
        with keeping_hyperparameters(self.weights_optimizer, self.arch_optimizer):
            self.weights_optimizer.load_state_dict(state["weight_optimizer"])
            self.strategy.load_state_dict(state["strategy"])
        self.target.load_state_dict(state["objective"])
        self.latency.load_state_dict(state["objective"])
        self.sampler.set_state(state["sampler"])


def build_parts(config: SearchConfig, space: SearchSpace, num_classes: int, cost_model: Any,
                context: DistributedContext, device: torch.device) -> SearchParts:
    """Latency parts, the supernet (alphas ~ N(0, arch.init_std^2) from the seed), SGD on the
    weights, Adam on the alphas (gradients averaged over ranks: identical alphas everywhere)
    and the strategy."""
    seed, arch = config.run.seed, config.arch
    profile, target, latency = build_latency(config, space, cost_model)
    supernet = build_supernet(space, num_classes, mixed_op=config.search.mixed_op).to(device)
    supernet = context.sync_batchnorm(supernet, config.run.sync_batchnorm)
    with torch.no_grad():
        init = torch.Generator().manual_seed(seed)
        for alpha in supernet.arch_parameters():
            alpha.copy_(torch.randn(alpha.shape, generator=init) * arch.init_std)
    weights_optimizer = weight_optimizer(supernet, config)
    arch_optimizer = make_arch_optimizer(supernet, arch.lr, (arch.beta1, arch.beta2), arch.eps,
                                         arch.weight_decay)
    context.average_gradients_before_step(arch_optimizer)
    strategy = make_strategy(config.search.strategy, supernet, latency, arch_optimizer,
                             binary_mode=config.search.binary_mode, samples=config.reinforce.samples,
                             reward_exponent=config.reinforce.reward_exponent,
                             baseline_decay=config.reinforce.baseline_decay)
    return SearchParts(supernet, weights_optimizer, arch_optimizer, strategy, profile, target, latency,
                       torch.Generator().manual_seed(seed + 2))
