"""Exponential moving average of a model's weights, used for evaluation when enabled."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """A shadow copy of ``model`` whose parameters follow

        theta_ema <- d_t * theta_ema + (1 - d_t) * theta,   d_t = min(decay, (1 + t) / (10 + t)),

    after every optimiser step t (the ramp keeps early, still-random weights from dominating).
    Buffers (BatchNorm statistics) are copied, not averaged: the running statistics already
    are averages.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self._parameter_names = {name for name, _ in self.module.named_parameters()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        model_state = model.state_dict()
        for name, value in self.module.state_dict().items():
            source = model_state[name].detach()
            if name in self._parameter_names:
                value.mul_(decay).add_(source.to(value.dtype), alpha=1.0 - decay)
            else:
                value.copy_(source)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"])
