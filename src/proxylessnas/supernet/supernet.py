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

from collections.abc import Sequence

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.net import ProxylessNet, build_net
from proxylessnas.ops.blocks import Classifier, ConvBNAct, MBConv, Residual, init_weights
from proxylessnas.space.arch import Arch
from proxylessnas.space.spec import SearchSpace
from proxylessnas.supernet.gate import MODES
from proxylessnas.supernet.init import embed_smallest_candidate, zero_init_residual_branches
from proxylessnas.supernet.mixed_op import MixedOp
from proxylessnas.supernet.sampling import LayerSampler

MIXED_OPS = ("binary", "darts", "gumbel")
ALPHA_INIT_STD = 1e-3


class SuperNet(nn.Module):
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
        super().__init__()
        if mixed_op not in MIXED_OPS:
            raise ProxylessError(f"unknown mixed op '{mixed_op}'", "supernet",
                                 f"use one of {', '.join(MIXED_OPS)}")
        if not space.searched_layers:
            raise ProxylessError("the space has no searched layer", space.name,
                                 "give some layer two or more candidates")
        self.space = space
        self.num_classes = space.head.num_classes if num_classes is None else num_classes
        self.mixed_op = mixed_op
        self.temperature = 5.0  # Gumbel-softmax only; FBNet anneals it by 0.956 per epoch.
        bn = {"bn_momentum": space.bn.momentum, "bn_eps": space.bn.eps}
        self.stem = ConvBNAct(space.stem.in_chs, space.stem.out_chs, space.stem.kernel_size,
                              space.stem.stride, **bn)
        blocks: list[nn.Module] = []
        for layer in space.layers:
            op = layer.candidates[0]
            if layer.searchable:
                blocks.append(MixedOp.from_layer(layer, space.bn))
            elif op.is_zero:
                blocks.append(nn.Identity())
            else:
                blocks.append(Residual(MBConv(layer.in_chs, layer.out_chs, op.kernel_size,
                                              layer.stride, op.expand_ratio, **bn),
                                       layer.residual_allowed))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(space.head.in_chs, space.head.out_chs, 1, **bn)
        self.classifier = Classifier(space.head.out_chs, self.num_classes, space.head.dropout)
        init_weights(self)
        self.mixed_ops: list[MixedOp] = [b for b in blocks if isinstance(b, MixedOp)]
        if embed_smallest:
            embed_smallest_candidate(self.mixed_ops)
        if zero_init_residual:
            zero_init_residual_branches(self.mixed_ops)
        with torch.no_grad():
            for mixed in self.mixed_ops:
                mixed.alpha.normal_(0.0, ALPHA_INIT_STD)
        self._sampler = LayerSampler([m.num_candidates for m in self.mixed_ops])
        self._pairs: list[tuple[int, int]] | None = None
        self._pair_logsumexp: list[torch.Tensor] | None = None

    # -- parameters ---------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """One logit vector per searched layer, in ``space.searched_layers`` order."""
        return [mixed.alpha for mixed in self.mixed_ops]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an architecture logit."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def probs(self) -> list[torch.Tensor]:
        """``softmax(alpha_l)`` per searched layer (differentiable)."""
        return [torch.softmax(mixed.alpha, dim=0) for mixed in self.mixed_ops]

    # -- sampling -----------------------------------------------------------------------------
    def sample_weight_step(self, generator: torch.Generator | None = None) -> list[int]:
        """Prepare a weight step and return the chosen index per layer.

        binary: one path per layer drawn from ``p`` (alphas unused). darts: every candidate,
        weighted by ``p`` (detached); returns the argmax. gumbel: every candidate weighted by a
        detached Gumbel-softmax sample; returns its argmax.
        """
        self._forget_pairs()
        if self.mixed_op == "binary":
            indices = self._sampler.sample_one(self.arch_parameters(), generator)
            for mixed, index in zip(self.mixed_ops, indices):
                mixed.use_path(index)
            return indices
        return self._use_weights(generator, differentiable=False)

    def sample_arch_step(self, mode: str, generator: torch.Generator | None = None) -> list[int]:
        """Prepare an architecture step in ``mode`` (full | full_v2 | two); returns the active
        index per layer. See the module docstring for the step sequence."""
        if mode not in MODES:
            raise ProxylessError(f"unknown architecture mode '{mode}'", "supernet",
                                 f"use one of {', '.join(MODES)}")
        self._forget_pairs()
        if self.mixed_op != "binary":
            if mode != "full":
                raise ProxylessError(f"mode '{mode}' needs binary gates", f"mixed_op={self.mixed_op}",
                                     "use mode 'full' or mixed_op='binary'")
            return self._use_weights(generator, differentiable=True)
        alphas = self.arch_parameters()
        if mode == "two":
            pairs, active = self._sampler.sample_two(alphas, generator)
            for mixed, pair, index in zip(self.mixed_ops, pairs, active):
                mixed.use_gates(index, pair, mode)
            with torch.no_grad():
                self._pair_logsumexp = [torch.logsumexp(a[list(pair)], dim=0)
                                        for a, pair in zip(alphas, pairs)]
            self._pairs = pairs
            return active
        active = self._sampler.sample_one(alphas, generator)
        for mixed, index in zip(self.mixed_ops, active):
            mixed.use_gates(index, range(mixed.num_candidates), mode)
        return active

    def finish_arch_step(self) -> None:
        """Call right after the alpha optimiser's step. Mode ``two``: shift the pair's logits by
        ``log(sum_pair exp(alpha_new) / sum_pair exp(alpha_old))`` so that the pair's total
        probability, hence every other probability, is unchanged. Other modes: nothing."""
        if self._pairs is None:
            return
        with torch.no_grad():
            for alpha, pair, old in zip(self.arch_parameters(), self._pairs, self._pair_logsumexp):
                index = list(pair)
                alpha[index] -= torch.logsumexp(alpha[index], dim=0) - old
        self._forget_pairs()

    def set_path(self, indices: Sequence[int]) -> None:
        """Fix one candidate per searched layer (no gates, alphas unused)."""
        indices = self._check_indices(indices)
        self._forget_pairs()
        for mixed, index in zip(self.mixed_ops, indices):
            mixed.use_path(index)

    def sample_arch(self, generator: torch.Generator | None = None) -> list[int]:
        """An independent draw ``i_l ~ p_l`` per layer; the supernet's state is unchanged."""
        return self._sampler.sample_one(self.arch_parameters(), generator)

    def log_prob(self, indices: Sequence[int]) -> torch.Tensor:
        """``sum_l log p_l[i_l]``, differentiable in the alphas."""
        indices = self._check_indices(indices)
        return torch.stack([torch.log_softmax(mixed.alpha, dim=0)[index]
                            for mixed, index in zip(self.mixed_ops, indices)]).sum()

    # -- deriving -----------------------------------------------------------------------------
    def export(self) -> Arch:
        """The most probable op per layer (argmax of ``p``), probabilities in the metadata."""
        layers = self.space.searched_layers
        probs = [p.detach().cpu() for p in self.probs()]
        ops = [layer.candidates[int(p.argmax())] for layer, p in zip(layers, probs)]
        metadata = {"probabilities": {layer.label: [round(float(v), 6) for v in p]
                                      for layer, p in zip(layers, probs)}}
        return Arch.from_ops(self.space, ops, metadata)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the currently sampled or fixed path(s)."""
        return self.classifier(self.forward_features(x))

    # -- internals ----------------------------------------------------------------------------
    def _use_weights(self, generator: torch.Generator | None, differentiable: bool) -> list[int]:
        probs = self.probs() if self.mixed_op == "darts" else self._gumbel_weights(generator)
        for mixed, weights in zip(self.mixed_ops, probs):
            mixed.use_weights(weights if differentiable else weights.detach())
        return [int(w.argmax()) for w in probs]

    def _gumbel_weights(self, generator: torch.Generator | None) -> list[torch.Tensor]:
        noise = self._sampler.gumbel_noise(generator)
        return [torch.softmax((mixed.alpha + g.to(mixed.alpha)) / self.temperature, dim=0)
                for mixed, g in zip(self.mixed_ops, noise)]

    def _check_indices(self, indices: Sequence[int]) -> list[int]:
        indices = [int(i) for i in indices]
        layers = self.space.searched_layers
        if len(indices) != len(layers):
            raise ProxylessError(f"{len(indices)} indices for {len(layers)} searched layers",
                                 "supernet", "give one candidate index per searched layer")
        for layer, index in zip(layers, indices):
            if not 0 <= index < len(layer.candidates):
                raise ProxylessError(f"candidate index {index} out of range", layer.label,
                                     f"use 0..{len(layer.candidates) - 1}")
        return indices

    def _forget_pairs(self) -> None:
        self._pairs = None
        self._pair_logsumexp = None
