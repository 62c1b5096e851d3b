"""``SuperNet``: the over-parameterised network of a search space with binarised paths.

stem -> for each layer of the space: a fixed block, or a :class:`MixedOp` over the layer's
candidates -> head (1x1 conv) -> classifier. One logit vector ``alpha_l`` per searched layer,
initialised N(0, 1e-3^2); ``p_l = softmax(alpha_l)``.

A step (PAPER.md 3), for ``mixed_op="binary"``:

- weight step: ``sample_weight_step()`` draws one path per layer from ``p``; forward and backward
  touch that path only; alphas get no gradient;
- architecture step: ``sample_arch_step(mode)`` with ``mode`` in ``full`` | ``full_v2`` | ``two``;
  run forward, ``loss.backward(inputs=supernet.arch_parameters())`` (skips weight gradients),
  the alpha optimiser's step, then ``finish_arch_step()`` (mode ``two``: rescale the pair so that
  every other probability is unchanged:
  ``alpha_i <- alpha_i_new - log(sum_pair exp(alpha_new) / sum_pair exp(alpha_old))``).

The DARTS (``mixed_op="darts"``: ``y = sum_k softmax(alpha)_k o_k(x)``) and Gumbel-softmax
(``"gumbel"``, FBNet: weights ``softmax((alpha + Gumbel noise) / temperature)``) baselines run
every candidate in both steps behind the same interface; their only architecture mode is
``full``.

DistributedDataParallel: unsampled candidates (and the alphas in weight steps) take no part in
the graph, so wrap with ``find_unused_parameters=True`` and sample with a ``torch.Generator``
seeded identically on every rank, so that every rank runs the same paths. Candidate outputs
recomputed for the gate gradients run under no_grad inside backward and are invisible to DDP.
"""

from __future__ import annotations

import torch
from torch import nn

from proxylessnas.nets.net import ProxylessNet, build_net, chain_block
from proxylessnas.nets.op_registry import build_op
from proxylessnas.ops.blocks import init_weights
from proxylessnas.space.arch import Arch
from proxylessnas.space.spec import SearchSpace
from proxylessnas.supernet.base import ALPHA_INIT_STD, MIXED_OPS, DecisionSuperNet
from proxylessnas.supernet.init import embed_smallest_candidate, zero_init_residual_branches
from proxylessnas.supernet.mixed_op import MixedOp

__all__ = ["ALPHA_INIT_STD", "MIXED_OPS", "SuperNet"]


class SuperNet(DecisionSuperNet):
    """Every candidate of every searched layer, run one sampled path at a time.

    Initialisation (supernet/init.py, both default True): with ``embed_smallest`` every
    candidate of a layer starts as the same function as its smallest candidate; with
    ``zero_init_residual`` candidates behind an identity shortcut start as the identity. Random
    paths then learn in the first epochs of a short search instead of staying near chance
    (docs/supernet.md, "Training the supernet in short searches"). Both False: every candidate
    independently initialised as in the paper's release.
    """

    def __init__(self, space: SearchSpace, num_classes: int | None = None,
                 mixed_op: str = "binary", embed_smallest: bool = True,
                 zero_init_residual: bool = True) -> None:
        super().__init__(space, num_classes, mixed_op)
        stem, head, bn = space.stem, space.head, space.bn
        self.stem = build_op(stem.op, stem.in_chs, stem.out_chs, stem.stride, bn)
        blocks: list[nn.Module] = []
        for layer in space.layers:
            op = layer.candidates[0]
            if layer.searchable:
                blocks.append(MixedOp.from_layer(layer, bn))
            elif op.is_zero:
                blocks.append(nn.Identity())
            else:
                blocks.append(chain_block(op, layer.in_chs, layer.out_chs, layer.stride,
                                          layer.residual_allowed, bn))
        self.blocks = nn.Sequential(*blocks)
        self.head = build_op(head.conv_op, head.in_chs, head.out_chs, 1, bn)
        self.classifier = build_op(head.classifier_op, head.out_chs, self.num_classes, 1, bn)
        init_weights(self)
        self.mixed_ops: list[MixedOp] = [b for b in blocks if isinstance(b, MixedOp)]
        if embed_smallest:
            embed_smallest_candidate(self.mixed_ops)
        if zero_init_residual:
            zero_init_residual_branches(self.mixed_ops)
        with torch.no_grad():
            for mixed in self.mixed_ops:
                mixed.alpha.normal_(0.0, ALPHA_INIT_STD)
        self.decision_ops = [[mixed] for mixed in self.mixed_ops]
        self._start_sampling()

    # -- parameters ----------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """One logit vector per searched layer, in ``space.searched_layers`` order."""
        return [mixed.alpha for mixed in self.mixed_ops]

    # -- deriving -----------------------------------------------------------------------------
    def derive(self, arch: Arch | None = None, inherit: bool = True) -> ProxylessNet:
        """A fresh standalone net of ``arch`` (default: :meth:`export`); with ``inherit`` it takes
        the stem, fixed blocks, chosen candidates, head and classifier weights (and BatchNorm
        statistics) of this supernet, so both give the same outputs in eval mode."""
        arch = self.export() if arch is None else arch
        arch.validate(self.space)
        reference = self.classifier.linear.weight
        net = build_net(self.space, arch, self.num_classes).to(reference.device, reference.dtype)
        if not inherit:
            return net
        net.stem.load_state_dict(self.stem.state_dict())
        net.head.load_state_dict(self.head.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        net_blocks = iter(net.blocks)
        for layer, block, op in zip(self.space.layers, self.blocks, arch.ops(self.space)):
            if op.is_zero:
                continue
            body = block.body(layer.index(op)) if isinstance(block, MixedOp) else block.body
            next(net_blocks).body.load_state_dict(body.state_dict())
        return net

    # -- forward ------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
