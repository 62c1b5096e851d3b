"""The standalone network: a plain ``nn.Module`` built from a :class:`NetConfig`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from proxylessnas.nets.config import NetConfig, net_config
from proxylessnas.ops.blocks import Classifier, ConvBNAct, MBConv, Residual, init_weights
from proxylessnas.space.arch import Arch
from proxylessnas.space.spec import SearchSpace


class ProxylessNet(nn.Module):
    """stem -> blocks -> head (1x1 conv) -> classifier; ``config()`` rebuilds the same module."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self._config = config
        bn = {"bn_momentum": config.bn_momentum, "bn_eps": config.bn_eps}
        self.stem = ConvBNAct(config.in_chs, config.stem_chs, config.stem_kernel,
                              config.stem_stride, **bn)
        self.blocks = nn.Sequential(*(
            Residual(MBConv(b.in_chs, b.out_chs, b.kernel_size, b.stride, b.expand_ratio, **bn),
                     b.residual)
            for b in config.blocks))
        self.head = ConvBNAct(config.feature_chs, config.head_chs, 1, **bn)
        self.classifier = Classifier(config.head_chs, config.num_classes, config.dropout)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    @property
    def net_config(self) -> NetConfig:
        return self._config

    def config(self) -> dict[str, Any]:
        """Versioned plain-data config; ``ProxylessNet.from_config(net.config())`` rebuilds it."""
        return self._config.to_dict()

    @classmethod
    def from_config(cls, config: dict[str, Any] | NetConfig) -> ProxylessNet:
        return cls(config if isinstance(config, NetConfig) else NetConfig.from_dict(config))


def build_net(space: SearchSpace, arch: Arch, num_classes: int | None = None,
              dropout: float | None = None) -> ProxylessNet:
    """Standalone net of ``arch``: zero blocks dropped, residuals where stride 1 and in == out."""
    return ProxylessNet(net_config(space, arch, num_classes, dropout))
