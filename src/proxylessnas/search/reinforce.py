"""REINFORCE for the architecture parameters (the paper's strategy 2, MnasNet-style reward).

Per update, B architectures a_b are sampled from p (independently per layer), each is evaluated
(accuracy on a validation batch, latency from the cost model) and rewarded::

    R_b = ACC_b * (T / LAT_b)^w                       (w = 0.1)

The score-function estimate of grad_alpha E_p[R] is minimised as the surrogate loss::

    loss = -(1 / B) * sum_b (R_b - baseline) * log p(a_b)

The baseline is a moving average that weights the OLD value, ``b <- decay * b + (1 - decay) *
mean_b R_b`` (decay 0.99). Advantages use the baseline from BEFORE this batch's update: a
baseline that does not depend on the current samples leaves the estimate unbiased. Before any
batch has been seen there is no baseline (advantages use 0); the first batch then sets b to its
mean reward, so that the average does not start from an arbitrary 0 and creep up for ~1/(1 - decay)
updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from proxylessnas.errors import ProxylessError


def reward(accuracy: Tensor | float, latency: Tensor | float, target: float,
           exponent: float = 0.1) -> Tensor:
    """MnasNet-style reward ``R = ACC * (T / LAT)^w``; works element-wise on tensors."""
    if target <= 0:
        raise ProxylessError(f"latency target must be positive, got {target}", "reinforce reward",
                             "give a target latency > 0")
    accuracy = torch.as_tensor(accuracy, dtype=torch.float64)
    latency = torch.as_tensor(latency, dtype=torch.float64)
    return accuracy * (target / latency) ** exponent


@dataclass
class MovingAverageBaseline:
    """``b <- decay * b + (1 - decay) * mean(R)``; ``value`` is None until the first batch."""

    decay: float = 0.99
    value: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise ProxylessError(f"baseline decay must be in [0, 1), got {self.decay}",
                                 "reinforce baseline", "give a decay such as 0.99")

    def current(self) -> float:
        return 0.0 if self.value is None else self.value

    def update(self, rewards: Tensor) -> float:
        mean = float(torch.as_tensor(rewards).detach().mean())
        self.value = mean if self.value is None else self.decay * self.value + (1 - self.decay) * mean
        return self.value

    def state_dict(self) -> dict:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.value = None if state["value"] is None else float(state["value"])


def sample_architectures(probs: Sequence[Tensor], count: int,
                         generator: torch.Generator | None = None) -> Tensor:
    """``count`` architectures drawn independently per layer from p: a LongTensor (count, layers)."""
    columns = [torch.multinomial(p.detach(), count, replacement=True, generator=generator) for p in probs]
    return torch.stack(columns, dim=1)


def log_prob(alphas: Sequence[Tensor], indices: Tensor) -> Tensor:
    """``log p(a) = sum_l log softmax(alpha_l)[a_l]`` for each row of ``indices`` (B, layers)."""
    indices = torch.as_tensor(indices).reshape(-1, len(alphas))
    terms = [torch.log_softmax(alpha, dim=-1)[indices[:, layer]] for layer, alpha in enumerate(alphas)]
    return torch.stack(terms, dim=1).sum(dim=1)


def surrogate_loss(rewards: Tensor, log_probs: Tensor, baseline: float) -> Tensor:
    """``-(1 / B) sum_b (R_b - baseline) * log p(a_b)``; its gradient estimates -grad E_p[R]."""
    advantages = torch.as_tensor(rewards).detach().to(log_probs.dtype) - baseline
    return -(advantages * log_probs).sum() / log_probs.numel()


def reinforce_loss(rewards: Tensor, log_probs: Tensor,
                   baseline: MovingAverageBaseline) -> tuple[Tensor, dict[str, float]]:
    """Surrogate loss with the baseline from before this batch, then the baseline update.

    Returns (loss, details) with the mean reward, the baseline used and the updated one.
    """
    rewards = torch.as_tensor(rewards).detach()
    if rewards.numel() != log_probs.numel():
        raise ValueError(f"{rewards.numel()} rewards for {log_probs.numel()} log-probs")
    used = baseline.current()
    loss = surrogate_loss(rewards, log_probs, used)
    updated = baseline.update(rewards)
    return loss, {"reward": float(rewards.mean()), "baseline": used, "baseline_next": updated,
                  "loss": float(loss.detach())}
