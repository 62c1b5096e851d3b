"""``MixedOp``: one searched layer of the supernet, holding every candidate of the layer.

Its state (set by the supernet before a forward pass, never a class-level flag) says how it runs:

- a fixed path (weight steps, ``set_path``): only ``o_active`` runs, plain autograd, the logits
  ``alpha`` are not used;
- binary gates (architecture steps, modes ``full`` / ``full_v2`` / ``two``): the active path
  runs with autograd and :class:`~proxylessnas.supernet.gate.BinaryGate` gives ``alpha`` its
  gradient;
- weighted (the DARTS and Gumbel-softmax baselines): ``y = shortcut(x) + sum_k w_k o_k(x)``
  over every candidate, with autograd (O(N) memory).

Unsampled candidates are never called in the first two states, so their weights get no
gradient (``grad is None``): optimisers skip them, with no momentum or weight-decay drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.op_registry import build_op
from proxylessnas.space.ops import OpSpec
from proxylessnas.space.spec import BNSpec, LayerSpec
from proxylessnas.supernet.gate import BinaryGate, batch_statistics_only


def candidate_modules(candidates: Sequence[OpSpec], in_chs: int, out_chs: int, stride: int,
                      bn: BNSpec) -> list[tuple[str, nn.Module | None]]:
    """``(token, module)`` per candidate, built by the op registry; ``None`` for zero (no module)."""
    return [(op.token, None if op.is_zero else build_op(op, in_chs, out_chs, stride, bn))
            for op in candidates]


class MixedOp(nn.Module):
    """Candidates of one layer or edge (``None`` for the zero op), an optional identity shortcut
    and the architecture logits ``alpha`` (one per candidate).

    With ``own_alpha=False`` the logits live elsewhere (a graph space's decision, shared by all
    its edges) and are handed over with :meth:`use_gates` / :meth:`use_weights`. A zero
    candidate contributes 0: with the shortcut the layer is the identity, without it the edge
    outputs ``zeros`` of its output shape (``out_chs`` channels, side ``(n - 1) // stride + 1``).
    """

    def __init__(self, candidates: Sequence[tuple[str, nn.Module | None]], shortcut: bool,
                 label: str = "", *, own_alpha: bool = True, out_chs: int | None = None,
                 stride: int = 1) -> None:
        super().__init__()
        if len(candidates) < 2:
            raise ProxylessError("a mixed op needs at least two candidates", label or "MixedOp",
                                 "give two or more candidates")
        self.label = label
        self.names = [name for name, _ in candidates]
        self.shortcut = shortcut
        self.out_chs = out_chs
        self.stride = stride
        if any(body is None for _, body in candidates) and not shortcut and out_chs is None:
            raise ProxylessError("a zero candidate needs the identity shortcut or the edge's out_chs",
                                 label or "MixedOp",
                                 "use zero only where stride is 1 and in == out channels")
        self.candidates = nn.ModuleDict({name: body for name, body in candidates if body is not None})
        self._bodies: list[nn.Module | None] = [body for _, body in candidates]
        self._is_zero = tuple(body is None for body in self._bodies)
        self._batch_norms = [
            [] if body is None else [m for m in body.modules()
                                     if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            for body in self._bodies]
        self.alpha = nn.Parameter(torch.zeros(len(candidates))) if own_alpha else None
        self._state: tuple | None = None
        self._gate_alpha: torch.Tensor | None = None

    @classmethod
    def from_layer(cls, layer: LayerSpec, bn: BNSpec | None = None) -> MixedOp:
        """Every candidate of a chain layer, behind the identity shortcut where the layer has one."""
        bodies = candidate_modules(layer.candidates, layer.in_chs, layer.out_chs, layer.stride,
                                   bn or BNSpec())
        return cls(bodies, layer.residual_allowed, layer.label)

    @property
    def num_candidates(self) -> int:
        return len(self._bodies)

    def body(self, index: int) -> nn.Module | None:
        """The module of candidate ``index`` (``None`` for zero)."""
        return self._bodies[index]

    # -- state ------------------------------------------------------------------------------
    def use_path(self, index: int) -> None:
        """Run only candidate ``index``, without gates."""
        self._state = ("path", index)

    def use_gates(self, active: int, gate_set: Sequence[int], mode: str,
                  alpha: torch.Tensor | None = None) -> None:
        """Run candidate ``active`` behind binary gates over ``gate_set`` (see gate.py); the
        gate gradients go to ``alpha`` (default: this op's own logits)."""
        self._state = ("gates", active, tuple(gate_set), mode != "full")
        # a plain reference: assigning a Parameter to a module attribute would register it
        object.__setattr__(self, "_gate_alpha", self.alpha if alpha is None else alpha)

    def use_weights(self, weights: torch.Tensor) -> None:
        """Run every candidate and sum the outputs weighted by ``weights`` (DARTS / Gumbel)."""
        self._state = ("weighted", weights)

    def clear(self) -> None:
        self._state = None

    @property
    def state(self) -> tuple | None:
        return self._state

    # -- forward ----------------------------------------------------------------------------
    def candidate_output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """``o_k(x)`` of a non-zero candidate, leaving BatchNorm running statistics untouched."""
        with batch_statistics_only(self._batch_norms[index]):
            return self._bodies[index](x)

    def zero_output(self, x: torch.Tensor) -> torch.Tensor:
        """What a zero candidate outputs on an edge without shortcut: zeros of the edge's shape."""
        side = lambda n: (n - 1) // self.stride + 1  # noqa: E731
        return x.new_zeros(x.shape[0], self.out_chs, side(x.shape[2]), side(x.shape[3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self._state
        if state is None:
            raise ProxylessError("no path chosen for the supernet", self.label or "MixedOp",
                                 "call sample_weight_step, sample_arch_step or set_path first")
        kind = state[0]
        if kind == "path":
            body = self._bodies[state[1]]
            if body is None:
                return x if self.shortcut else self.zero_output(x)
            out = body(x)
            return x + out if self.shortcut else out
        if kind == "gates":
            _, active, gate_set, recompute = state
            body = self._bodies[active]
            if body is not None:
                active_output = body(x)
            else:  # zero: the identity behind the shortcut, else an output of zeros (gate gradient 0)
                active_output = None if self.shortcut else self.zero_output(x)
            return BinaryGate.apply(self._gate_alpha, x, active_output, self.candidate_output,
                                    self._is_zero, active, gate_set, self.shortcut, recompute)
        weights = state[1]
        out = x if self.shortcut else None
        for index, body in enumerate(self._bodies):
            if body is None:
                continue
            term = weights[index] * body(x)
            out = term if out is None else out + term
        return self.zero_output(x) if out is None else out

    def extra_repr(self) -> str:
        return f"label={self.label!r}, candidates={self.names}, shortcut={self.shortcut}"
