"""The standalone network: a plain ``nn.Module`` built from a :class:`NetConfig`.

:func:`build_net` builds the standalone net of any space kind: it dispatches on the space's type
(chains here, graph spaces in ``nets/graph_net.py``); :func:`net_from_config` rebuilds a net
from any ``config()`` dict, dispatching on its ``kind``. Every part is built by the op registry
(``nets/op_registry.py``); a chain layer adds the identity shortcut (:func:`chain_block`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import singledispatch
from typing import Any

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.config import NET_KIND, NetConfig, net_config
from proxylessnas.nets.op_registry import build_op
from proxylessnas.ops.blocks import Residual, init_weights
from proxylessnas.space.arch import Arch
from proxylessnas.space.ops import HEAD_CONV, ClassifierOp, StemOp
from proxylessnas.space.spec import BNSpec, SearchSpace


def chain_block(op, in_chs: int, out_chs: int, stride: int, shortcut: bool, bn: BNSpec) -> Residual:
    """One layer of a chain: ``x + body(x)`` with the identity ``shortcut``, else ``body(x)``."""
    return Residual(build_op(op, in_chs, out_chs, stride, bn), shortcut)


class ProxylessNet(nn.Module):
    """stem -> blocks -> head (1x1 conv) -> classifier; ``config()`` rebuilds the same module."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self._config = config
        bn = BNSpec(config.bn_momentum, config.bn_eps)
        self.stem = build_op(StemOp(config.stem_kernel), config.in_chs, config.stem_chs,
                             config.stem_stride, bn)
        self.blocks = nn.Sequential(*(chain_block(b.op, b.in_chs, b.out_chs, b.stride, b.residual, bn)
                                      for b in config.blocks))
        self.head = build_op(HEAD_CONV, config.feature_chs, config.head_chs, 1, bn)
        self.classifier = build_op(ClassifierOp(config.dropout), config.head_chs, config.num_classes, 1, bn)
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


@singledispatch
def build_net(space, arch: Arch, num_classes: int | None = None, dropout: float | None = None,
              name: str = "") -> nn.Module:
    """Standalone net of ``arch`` in ``space`` (a chain ``SearchSpace`` or a ``GraphSpace``).

    Chain: zero blocks dropped, residuals where stride 1 and in == out (:class:`ProxylessNet`).
    Graph: zero edges dropped, nodes sum their edges (``nets.graph_net.GraphNet``)."""
    raise ProxylessError(f"no standalone net for a {type(space).__name__}", "build_net",
                         "give a space from get_space()")


@build_net.register
def _build_chain_net(space: SearchSpace, arch: Arch, num_classes: int | None = None,
                     dropout: float | None = None, name: str = "") -> ProxylessNet:
    return ProxylessNet(net_config(space, arch, num_classes, dropout, name))


_NET_KINDS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {NET_KIND: ProxylessNet.from_config}


def register_net_kind(kind: str, from_config: Callable[[dict[str, Any]], nn.Module]) -> None:
    """Let :func:`net_from_config` rebuild configs whose ``kind`` is ``kind``."""
    _NET_KINDS[kind] = from_config


def net_from_config(config: dict[str, Any], where: str = "net config") -> nn.Module:
    """The net of a ``net.config()`` dict of any kind (chain or graph)."""
    kind = config.get("kind") if isinstance(config, dict) else None
    if not isinstance(kind, str) or kind not in _NET_KINDS:
        raise ProxylessError(f"unknown net config kind {kind!r}", where,
                             f"give a config written by net.config() (kinds: {', '.join(_NET_KINDS)})")
    return _NET_KINDS[kind](config)
