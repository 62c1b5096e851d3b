"""The binary gate: one active path forward, the paper's gate gradients backward.

A searched layer computes ``y = shortcut(x) + sum_k g_k o_k(x)`` with binary gates
``g = one_hot(active)``, so numerically ``y`` is the active path's output. Backward (PAPER.md 3)::

    dL/dg_k     = < dL/dy , o_k(x) >             (inner product over the whole batch tensor)
    dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i) = p_i (G_i - <G, p>)

``p`` is the softmax of the logits over the *gate set*: all candidates (modes ``full`` and
``full_v2``) or the sampled pair (mode ``two``, where ``p~ = softmax(alpha_pair)``).

Zero op, the same in every mode: ``o_zero(x) = 0``, so ``dL/dg_zero = 0`` (its logit still moves
through the ``-p_i <G, p>`` term). When zero is the active path the layer is the identity and the
gate gradients of the other candidates in the gate set are still computed from the gradient
arriving at the layer output. (The reference release skipped the whole layer's update when
zero was active; which it did depended on the torch version. Skipping would make the update of
a layer depend on whether its sample happened to be zero, so we do not.)

Candidate outputs other than the active one are computed without autograd and without touching
BatchNorm running statistics (batch statistics are used, as in the active path's forward):
in the forward pass for ``full`` (kept until backward: O(N) memory), inside backward for
``full_v2`` and ``two`` (one candidate at a time: about one path of memory).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from torch import nn

MODES = ("full", "full_v2", "two")


def alpha_gradient(probs: torch.Tensor, gate_grads: torch.Tensor) -> torch.Tensor:
    """``p * (G - <G, p>)``: the gradient on the logits from the gate gradients ``G``."""
    return probs * (gate_grads - torch.dot(gate_grads, probs))


@contextmanager
def batch_statistics_only(batch_norms: Sequence[nn.modules.batchnorm._BatchNorm]):
    """Run BatchNorms on batch statistics without updating their running statistics.

    ``track_running_stats = False`` makes a training-mode BatchNorm pass no running buffers
    (so nothing is updated, ``num_batches_tracked`` included); eval-mode ones keep using them.
    """
    training = [bn for bn in batch_norms if bn.training and bn.track_running_stats]
    for bn in training:
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn in training:
            bn.track_running_stats = True


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Recomputed outputs may differ in dtype from the incoming gradient (mixed precision).
    return torch.dot(a.reshape(-1), b.reshape(-1).to(a.dtype))


class BinaryGate(torch.autograd.Function):
    """``y = shortcut(x) + o_active(x)`` with the gate gradients of :mod:`.gate` on ``alpha``.

    Arguments of ``apply``: ``alpha`` (the layer's logits), ``x`` (layer input), ``active_output``
    (``o_active(x)`` built with autograd, or ``None`` when the active op is zero), ``candidate``
    (``k -> o_k(x)`` for a non-zero candidate, run under no_grad), ``is_zero`` (per candidate),
    ``active`` (index), ``gate_set`` (indices whose gates get gradients), ``shortcut`` and
    ``recompute`` (True: others recomputed in backward; False: computed in forward).
    Gradients reach ``x`` and ``active_output`` unchanged (the gates of the active path are 1).
    """

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, x: torch.Tensor, active_output: torch.Tensor | None,
                candidate: Callable[[int, torch.Tensor], torch.Tensor], is_zero: Sequence[bool],
                active: int, gate_set: tuple[int, ...], shortcut: bool,
                recompute: bool) -> torch.Tensor:
        ctx.candidate, ctx.is_zero, ctx.active = candidate, is_zero, active
        ctx.gate_set, ctx.shortcut, ctx.recompute = gate_set, shortcut, recompute
        ctx.has_active_output = active_output is not None
        if active_output is None:
            y = x.view_as(x)
        elif shortcut:
            y = x + active_output
        else:
            y = active_output.view_as(active_output)
        # Precomputed (mode full) outputs of the other non-zero candidates of the gate set.
        others = [] if recompute else [candidate(k, x) for k in gate_set
                                       if k != active and not is_zero[k]]
        # o_active is y - x (shortcut) or y itself: saving x and y costs no memory, both are
        # already kept by the neighbouring convolutions.
        ctx.save_for_backward(alpha, x, y, *others)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        alpha, x, y, *others = ctx.saved_tensors
        precomputed = iter(others)
        gate_grads = []
        for k in ctx.gate_set:
            if ctx.is_zero[k]:
                gate_grads.append(grad_y.new_zeros(()))
                continue
            if k == ctx.active:
                output = y - x if ctx.shortcut else y
            elif ctx.recompute:
                with torch.no_grad():
                    output = ctx.candidate(k, x)
            else:
                output = next(precomputed)
            gate_grads.append(_inner(grad_y, output))
        index = torch.tensor(ctx.gate_set, device=alpha.device)
        probs = torch.softmax(alpha.detach()[index], dim=0)
        grad_alpha = torch.zeros_like(alpha)
        grad_alpha[index] = alpha_gradient(probs, torch.stack(gate_grads).to(alpha.dtype))
        grad_x = grad_y if ctx.shortcut or not ctx.has_active_output else None
        grad_active = grad_y if ctx.has_active_output else None
        return grad_alpha, grad_x, grad_active, None, None, None, None, None, None
