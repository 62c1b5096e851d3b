"""The supernet: binary-gated mixed ops, the gate gradient, DARTS / Gumbel baselines."""

from proxylessnas.supernet.gate import MODES, BinaryGate, alpha_gradient, batch_statistics_only
from proxylessnas.supernet.mixed_op import MixedOp
from proxylessnas.supernet.sampling import LayerSampler
from proxylessnas.supernet.supernet import MIXED_OPS, SuperNet

__all__ = ["MIXED_OPS", "MODES", "BinaryGate", "LayerSampler", "MixedOp", "SuperNet",
           "alpha_gradient", "batch_statistics_only"]
