"""Search strategies: how one architecture step updates the logits alpha of a :class:`SuperNet`.

Both strategies share the weight step (run by :func:`~proxylessnas.search.run.run_search`) and
differ in the architecture step, taken on a batch of the architecture-validation split:

- :class:`GradientStrategy` (binary gates, PAPER.md 3): sample gates in mode ``full``,
  ``full_v2`` or ``two``, loss = latency loss(CE, E[LAT]) with E[LAT] = fixed + sum_l <p_l, c_l>,
  backward into the alphas only, Adam step, then ``finish_arch_step`` (two-path rescale).
- :class:`ReinforceStrategy`: sample B architectures from p, reward R = ACC * (T / LAT)^w
  (MnasNet's reward), loss = -(1/B) sum_b (R_b - baseline) log p(arch_b), Adam step.

The latency side comes from a :class:`~proxylessnas.search.latency_loss.LatencyLoss`: its profile
(candidate costs, E[LAT]), its target T (table units) and its loss (soft penalty, or the
dual-ascent :class:`~proxylessnas.search.controller.LatencyController` of the target modes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.finite import check_finite
from proxylessnas.search.latency_loss import LatencyLoss
from proxylessnas.search.reinforce import MovingAverageBaseline, reinforce_loss, reward
from proxylessnas.supernet import SuperNet, batch_statistics_only


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def entropy_penalty(probs: Sequence[Tensor]) -> Tensor:
    """``sum_d H(p_d) / ln K_d`` over decisions with K_d >= 2 candidates, differentiable: each
    decision counts between 0 (one-hot) and 1 (uniform), so the weight is per decision and its
    pull on one logit does not shrink as the space gains decisions (a sum over all entropies
    divided by their uniform total would)."""
    terms = [-(p * torch.log(p.clamp_min(1e-30))).sum() / math.log(p.shape[-1])
             for p in probs if p.shape[-1] > 1]
    return torch.stack(terms).sum()


def entropy_weight(final_weight: float, progress: float) -> float:
    """The entropy term's weight at ``progress`` (0 to 1) through the search phase: it ramps
    linearly, ``beta_t = final_weight * progress``, so early steps follow the accuracy and latency
    signal alone and the last ones settle the decisions that signal left open."""
    return final_weight * min(1.0, max(0.0, progress))


def add_entropy_term(loss: Tensor, details: dict[str, float], probs: Sequence[Tensor],
                     weight: float) -> Tensor:
    """``loss + weight * entropy_penalty(probs)`` (``details["entropy_term"]`` records the term)."""
    if weight <= 0:
        return loss
    term = weight * entropy_penalty(probs)
    details["entropy_term"] = float(term.detach())
    return loss + term.to(loss.dtype)


def make_arch_optimizer(supernet: SuperNet, lr: float, betas: tuple[float, float], eps: float,
                        weight_decay: float) -> torch.optim.Adam:
    """Adam on the alphas only (paper: lr 1e-3, betas (0, 0.999), eps 1e-8, no weight decay)."""
    return torch.optim.Adam(supernet.arch_parameters(), lr=lr, betas=betas, eps=eps,
                            weight_decay=weight_decay)


class GradientStrategy:
    """Binary-gate architecture gradients (modes full, full_v2, two) plus the latency loss."""

    name = "gradient"

    def __init__(self, supernet: SuperNet, latency: LatencyLoss, optimizer: torch.optim.Optimizer,
                 binary_mode: str = "full_v2") -> None:
        self.supernet = supernet
        self.latency = latency
        self.optimizer = optimizer
        self.binary_mode = binary_mode
        self.entropy_weight = 0.0  # set before each step by the run (see :func:`entropy_weight`)

    def arch_step(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> dict[str, float]:
        supernet = self.supernet
        # the DARTS / Gumbel baselines have one architecture mode, full (every candidate runs)
        supernet.sample_arch_step(self.binary_mode if supernet.mixed_op == "binary" else "full", generator)
        logits = supernet(images)
        ce = F.cross_entropy(logits, labels)  # no label smoothing in the architecture loss
        probs = supernet.probs()
        loss, details = self.latency.loss(ce, probs)
        loss = add_entropy_term(loss, details, probs, self.entropy_weight)
        check_finite("architecture loss", loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=supernet.arch_parameters())  # weights get no gradient here
        self.optimizer.step()
        supernet.finish_arch_step()
        self.latency.after_arch_step(supernet.arch_parameters())
        details["arch_accuracy"] = float((logits.argmax(1) == labels).float().mean())
        return details

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class ReinforceStrategy:
    """REINFORCE on the alphas: grad = -(1/B) sum_b (R_b - baseline) grad log p(arch_b)."""

    name = "reinforce"

    def __init__(self, supernet: SuperNet, latency: LatencyLoss, optimizer: torch.optim.Optimizer,
                 samples: int = 10, reward_exponent: float = 0.1, baseline_decay: float = 0.9) -> None:
        self.supernet = supernet
        self.latency = latency
        self.optimizer = optimizer
        self.samples = samples
        self.reward_exponent = reward_exponent
        self.baseline = MovingAverageBaseline(baseline_decay)
        self._norms = batch_norms(supernet)
        self.entropy_weight = 0.0  # set before each step by the run (see :func:`entropy_weight`)

    @torch.no_grad()
    def _accuracy(self, indices: list[int], images: Tensor, labels: Tensor) -> float:
        self.supernet.set_path(indices)
        with batch_statistics_only(self._norms):  # batch statistics, running ones untouched
            logits = self.supernet(images)
        return float((logits.argmax(1) == labels).float().mean())

    def arch_step(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> dict[str, float]:
        supernet, profile, target = self.supernet, self.latency.profile, self.latency.target.table
        archs = [supernet.sample_arch(generator) for _ in range(self.samples)]
        accuracies = [self._accuracy(a, images, labels) for a in archs]
        latencies = [profile.cost_of(a) for a in archs]
        rewards = reward(torch.tensor(accuracies), torch.tensor(latencies), target,
                         self.reward_exponent)
        log_probs = torch.stack([supernet.log_prob(a) for a in archs])
        loss, details = reinforce_loss(rewards.to(log_probs.device), log_probs, self.baseline)
        loss = add_entropy_term(loss, details, supernet.probs(), self.entropy_weight)
        check_finite("REINFORCE loss", loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            expected = float(profile.expected([p.detach() for p in supernet.probs()]))
        return {"loss": details["loss"], "reward": details["reward"], "baseline": details["baseline"],
                "entropy_term": details.get("entropy_term", 0.0),
                "arch_accuracy": sum(accuracies) / len(accuracies), "expected_latency": expected,
                "sampled_latency": sum(latencies) / len(latencies), "target": target}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "baseline": self.baseline.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])


def make_strategy(name: str, supernet: SuperNet, latency: LatencyLoss,
                  optimizer: torch.optim.Optimizer, *, binary_mode: str = "full_v2", samples: int = 10,
                  reward_exponent: float = 0.1, baseline_decay: float = 0.9):
    """The strategy registered under ``name`` (gradient | reinforce)."""
    if name == "gradient":
        return GradientStrategy(supernet, latency, optimizer, binary_mode)
    if name == "reinforce":
        return ReinforceStrategy(supernet, latency, optimizer, samples, reward_exponent, baseline_decay)
    raise ProxylessError(f"unknown strategy '{name}'", "--strategy", "use gradient or reinforce")
