"""The weights a timed net carries: BatchNorm layers at their initial values get trained-like ones.

A freshly built net's BatchNorm layers hold ``weight 1, bias 0, running_mean 0, running_var 1``.
Folded into the convolution before it (ONNX export, OpenVINO, ExecuTorch), that gives a bias of
exactly zero, and a runtime may drop the bias addition altogether. A trained net, the one that is
deployed, always has non-zero folded biases. On OpenVINO INT8 (2026.4) that difference is 6-8 %
of a net's time: the trained net's 25 convolutions each get a per-channel bias post-op and run
~20 % slower (measured with the plugin's own profiling counters); on OpenVINO FP32 about 2 %.

So every module that is timed (:func:`~proxylessnas.hardware.measure.prepare_runner`: table
blocks, calibration, selection, validation nets, the speed gauge) is timed as a copy whose
initial-valued BatchNorm layers get deterministic trained-like values:

    weight ~ U(0.5, 1.5),  bias ~ N(0, 0.1^2),  running_mean ~ N(0, 0.1^2),  running_var ~ U(0.5, 2)

BatchNorm layers that are not at their initial values (a trained net's) are left as they are,
and the caller's module is never changed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

TIMED_BATCHNORM = "trained-like"
"""Recorded in every table's provenance (and matched on resume): tables timed before this module
priced fresh BatchNorm layers, whose zero folded biases some runtimes drop."""


def at_initial_values(bn: nn.modules.batchnorm._BatchNorm) -> bool:
    """Whether ``bn`` still holds the values a fresh BatchNorm starts with (1, 0, 0, 1)."""
    checks = []
    if bn.affine:
        checks += [bool(torch.all(bn.weight == 1)), bool(torch.all(bn.bias == 0))]
    if bn.track_running_stats and bn.running_mean is not None:
        checks += [bool(torch.all(bn.running_mean == 0)), bool(torch.all(bn.running_var == 1))]
    return bool(checks) and all(checks)


def trained_like_batchnorm(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` itself when none of its BatchNorm layers is at its initial values, else a copy in
    which those layers hold trained-like values (module docstring), drawn from ``seed``."""
    fresh = [name for name, m in module.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and at_initial_values(m)]
    if not fresh:
        return module
    module = copy.deepcopy(module)
    layers = dict(module.named_modules())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (layers[name] for name in fresh):
            n = bn.num_features
            if bn.affine:
                bn.weight.copy_(0.5 + torch.rand(n, generator=generator))
                bn.bias.copy_(0.1 * torch.randn(n, generator=generator))
            if bn.track_running_stats and bn.running_mean is not None:
                bn.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                bn.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
    return module
