"""What the chain and graph supernets share: one logit vector per searched decision.

A decision's alpha drives the mixed ops of all its edges (one edge on a chain, 3N cells' edges
in NAS-Bench-201): they run the same sampled candidate, and in an architecture step each edge's
binary gate adds its gate gradients into the shared alpha (autograd sums them), so
``dL/dalpha_i = p_i (sum_e G_ei - <sum_e G_e, p>)``. Subclasses build the modules and set
``space``, ``mixed_op``, ``temperature``, ``decision_ops`` (per searched decision, the list of
its :class:`~proxylessnas.supernet.mixed_op.MixedOp` s) and ``arch_parameters()``; the
sampling, the steps of every mode, ``export`` and the log-probabilities live here once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.space.arch import Arch
from proxylessnas.supernet.gate import MODES
from proxylessnas.supernet.mixed_op import MixedOp
from proxylessnas.supernet.sampling import LayerSampler

MIXED_OPS = ("binary", "darts", "gumbel")
WEIGHT_PATHS = ("distribution", "uniform")  # how a binary weight step draws its path
ALPHA_INIT_STD = 1e-3


def check_mixed_op(mixed_op: str) -> None:
    if mixed_op not in MIXED_OPS:
        raise ProxylessError(f"unknown mixed op '{mixed_op}'", "supernet",
                             f"use one of {', '.join(MIXED_OPS)}")


class DecisionSuperNet(nn.Module):
    """The search protocol (sample / probs / export / arch_parameters / weight_parameters) over
    ``decision_ops``; see the module docstring."""

    space: object
    mixed_op: str
    temperature: float
    decision_ops: list[list[MixedOp]]

    def __init__(self, space, num_classes: int | None, mixed_op: str) -> None:
        """The settings every supernet has; subclasses build their modules after this."""
        super().__init__()
        check_mixed_op(mixed_op)
        if not space.decisions:
            raise ProxylessError("the space has no searched decision", space.name,
                                 "give some layer or decision two or more candidates")
        self.space = space
        self.num_classes = space.head.num_classes if num_classes is None else num_classes
        self.mixed_op = mixed_op
        self.temperature = 5.0  # Gumbel-softmax only; FBNet anneals it by 0.956 per epoch.

    def _start_sampling(self) -> None:
        self._sampler = LayerSampler([ops[0].num_candidates for ops in self.decision_ops])
        self._pairs: list[tuple[int, int]] | None = None
        self._pair_logsumexp: list[torch.Tensor] | None = None

    # -- parameters ---------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:  # pragma: no cover - abstract
        """One logit vector per searched decision, in ``space.decisions`` order."""
        raise NotImplementedError

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an architecture logit."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def probs(self) -> list[torch.Tensor]:
        """``softmax(alpha_l)`` per searched decision (differentiable)."""
        return [torch.softmax(alpha, dim=0) for alpha in self.arch_parameters()]

    # -- sampling -----------------------------------------------------------------------------
    def sample_weight_step(self, generator: torch.Generator | None = None,
                           paths: str = "distribution") -> list[int]:
        """Prepare a weight step and return the chosen index per decision.

        binary: one path per decision drawn from ``p`` (alphas unused), or uniformly with
        ``paths="uniform"``. darts: every candidate, weighted by ``p`` (detached); returns the
        argmax. gumbel: every candidate weighted by a detached Gumbel-softmax sample; returns its
        argmax.
        """
        if paths not in WEIGHT_PATHS:
            raise ProxylessError(f"unknown weight paths '{paths}'", "supernet",
                                 f"use one of {', '.join(WEIGHT_PATHS)}")
        self._forget_pairs()
        if self.mixed_op == "binary":
            alphas = self.arch_parameters()
            if paths == "uniform":  # equal logits: p_l uniform
                alphas = [torch.zeros_like(alpha) for alpha in alphas]
            indices = self._sampler.sample_one(alphas, generator)
            self._use_paths(indices)
            return indices
        return self._use_weights(generator, differentiable=False)

    def sample_arch_step(self, mode: str, generator: torch.Generator | None = None) -> list[int]:
        """Prepare an architecture step in ``mode`` (full | full_v2 | two); returns the active
        index per decision (the step sequence: supernet/supernet.py's module docstring)."""
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
            for ops, alpha, pair, index in zip(self.decision_ops, alphas, pairs, active):
                for mixed in ops:
                    mixed.use_gates(index, pair, mode, alpha)
            with torch.no_grad():
                self._pair_logsumexp = [torch.logsumexp(a[list(pair)], dim=0)
                                        for a, pair in zip(alphas, pairs)]
            self._pairs = pairs
            return active
        active = self._sampler.sample_one(alphas, generator)
        for ops, alpha, index in zip(self.decision_ops, alphas, active):
            for mixed in ops:
                mixed.use_gates(index, range(mixed.num_candidates), mode, alpha)
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
        """Fix one candidate per searched decision (no gates, alphas unused)."""
        indices = self._check_indices(indices)
        self._forget_pairs()
        self._use_paths(indices)

    def sample_arch(self, generator: torch.Generator | None = None) -> list[int]:
        """An independent draw ``i_l ~ p_l`` per decision; the supernet's state is unchanged."""
        return self._sampler.sample_one(self.arch_parameters(), generator)

    def log_prob(self, indices: Sequence[int]) -> torch.Tensor:
        """``sum_l log p_l[i_l]``, differentiable in the alphas."""
        indices = self._check_indices(indices)
        return torch.stack([torch.log_softmax(alpha, dim=0)[index]
                            for alpha, index in zip(self.arch_parameters(), indices)]).sum()

    # -- deriving -----------------------------------------------------------------------------
    def export(self) -> Arch:
        """The most probable op per decision (argmax of ``p``), probabilities in the metadata."""
        decisions = self.space.decisions
        probs = [p.detach().cpu() for p in self.probs()]
        ops = [decision.candidates[int(p.argmax())] for decision, p in zip(decisions, probs)]
        metadata = {"probabilities": {decision.label: [round(float(v), 6) for v in p]
                                      for decision, p in zip(decisions, probs)}}
        return Arch.from_ops(self.space, ops, metadata)

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the currently sampled or fixed path(s)."""
        return self.classifier(self.forward_features(x))

    # -- internals ----------------------------------------------------------------------------
    def _use_weights(self, generator: torch.Generator | None, differentiable: bool) -> list[int]:
        probs = self.probs() if self.mixed_op == "darts" else self._gumbel_weights(generator)
        for ops, weights in zip(self.decision_ops, probs):
            for mixed in ops:
                mixed.use_weights(weights if differentiable else weights.detach())
        return [int(w.argmax()) for w in probs]

    def _gumbel_weights(self, generator: torch.Generator | None) -> list[torch.Tensor]:
        noise = self._sampler.gumbel_noise(generator)
        return [torch.softmax((alpha + g.to(alpha)) / self.temperature, dim=0)
                for alpha, g in zip(self.arch_parameters(), noise)]

    def _check_indices(self, indices: Sequence[int]) -> list[int]:
        indices = [int(i) for i in indices]
        decisions = self.space.decisions
        if len(indices) != len(decisions):
            raise ProxylessError(f"{len(indices)} indices for {len(decisions)} searched decisions",
                                 "supernet", "give one candidate index per searched decision")
        for decision, index in zip(decisions, indices):
            if not 0 <= index < len(decision.candidates):
                raise ProxylessError(f"candidate index {index} out of range", decision.label,
                                     f"use 0..{len(decision.candidates) - 1}")
        return indices

    def _use_paths(self, indices: Sequence[int]) -> None:
        for ops, index in zip(self.decision_ops, indices):
            for mixed in ops:
                mixed.use_path(index)

    def _forget_pairs(self) -> None:
        self._pairs = None
        self._pair_logsumexp = None
