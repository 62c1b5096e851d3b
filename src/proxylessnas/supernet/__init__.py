"""The supernet: binary-gated mixed ops, the gate gradient, DARTS / Gumbel baselines; chain
(:class:`SuperNet`) and graph (:class:`GraphSuperNet`) spaces behind one protocol."""

from proxylessnas.supernet.base import DecisionSuperNet
from proxylessnas.supernet.factory import build_supernet
from proxylessnas.supernet.gate import MODES, BinaryGate, alpha_gradient, batch_statistics_only
from proxylessnas.supernet.graph_supernet import GraphSuperNet
from proxylessnas.supernet.mixed_op import MixedOp
from proxylessnas.supernet.sampling import LayerSampler
from proxylessnas.supernet.supernet import MIXED_OPS, SuperNet

__all__ = ["MIXED_OPS", "MODES", "BinaryGate", "DecisionSuperNet", "GraphSuperNet", "LayerSampler",
           "MixedOp", "SuperNet", "alpha_gradient", "batch_statistics_only", "build_supernet"]
