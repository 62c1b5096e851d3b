"""Vectorised path sampling over all searched layers at once (a few tensor ops per step,
whatever the number of layers; nothing per unsampled candidate).

Logits are gathered on the CPU in float64 into one padded matrix (padding has probability 0),
so one ``torch.multinomial`` call samples every layer, reproducibly for a given CPU
``torch.Generator``; on a GPU this costs one device-to-host copy per step, not one per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class LayerSampler:
    """Samples one index (or a pair) per layer from ``softmax(alpha_l)``."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = tuple(int(n) for n in sizes)
        self.rows = torch.cat([torch.full((n,), row, dtype=torch.long)
                               for row, n in enumerate(self.sizes)])
        self.cols = torch.cat([torch.arange(n) for n in self.sizes])
        self.width = max(self.sizes)

    def probabilities(self, alphas: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(layers, max N)`` float64 CPU matrix of softmax(alpha_l), zero-padded."""
        flat = torch.cat([a.detach().reshape(-1) for a in alphas]).to("cpu", torch.float64)
        logits = torch.full((len(self.sizes), self.width), float("-inf"), dtype=torch.float64)
        logits[self.rows, self.cols] = flat
        return torch.softmax(logits, dim=1)

    def sample_one(self, alphas: Sequence[torch.Tensor],
                   generator: torch.Generator | None = None) -> list[int]:
        """One index per layer, ``i_l ~ p_l``."""
        probs = self.probabilities(alphas)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1).tolist()

    def sample_two(self, alphas: Sequence[torch.Tensor], generator: torch.Generator | None = None
                   ) -> tuple[list[tuple[int, int]], list[int]]:
        """Per layer a pair drawn from ``p_l`` without replacement, and the active member drawn
        from ``p~ = softmax(alpha_pair)``, i.e. ``P(first) = p_a / (p_a + p_b)``."""
        probs = self.probabilities(alphas)
        pairs = torch.multinomial(probs, 2, replacement=False, generator=generator)
        pair_probs = probs.gather(1, pairs)
        first_prob = pair_probs[:, 0] / pair_probs.sum(1)
        uniform = torch.rand(len(self.sizes), dtype=torch.float64, generator=generator)
        active = torch.where(uniform < first_prob, pairs[:, 0], pairs[:, 1])
        return [tuple(p) for p in pairs.tolist()], active.tolist()

    def gumbel_noise(self, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Standard Gumbel noise ``-log(-log(u))``, one vector per layer (float64, CPU)."""
        uniform = torch.rand(sum(self.sizes), dtype=torch.float64, generator=generator)
        noise = -torch.log(-torch.log(uniform.clamp_min(1e-20)))
        return list(noise.split(self.sizes))
