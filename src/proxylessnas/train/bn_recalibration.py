"""BatchNorm recalibration: re-estimate running statistics for weights taken from elsewhere.

Weights inherited from a supernet were trained while other paths ran between them, so their
BatchNorm running mean/var describe a mixture of paths, not the derived net. Recalibration
resets every BatchNorm's statistics and averages them over ``num_batches`` training batches
with the net in training mode and no gradient: cumulative averaging (momentum=None) gives every
batch the same weight,

    mu = (1/N) sum_n mean(x_n),  var = (1/N) sum_n var_unbiased(x_n).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, num_batches: int) -> int:
    """Reset and re-estimate the statistics of every BatchNorm in ``model`` from ``batches``.

    ``batches`` yields images or (images, labels). Returns how many batches were used; weights
    and the model's train/eval mode are left as they were.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or num_batches <= 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    device = next(model.parameters()).device
    used = 0
    try:
        model.train()
        for batch in itertools.islice(batches, num_batches):
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(images.to(device))
            used += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
    return used
