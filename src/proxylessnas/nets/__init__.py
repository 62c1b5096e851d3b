"""Standalone nets from (space, arch) or a net config; the model zoo; reference-format import."""

from proxylessnas.nets.config import BlockConfig, NetConfig, net_config
from proxylessnas.nets.net import ProxylessNet, build_net
from proxylessnas.nets.profile import LayerProfile, count_params_macs, profile_net

__all__ = ["BlockConfig", "LayerProfile", "NetConfig", "ProxylessNet", "build_net",
           "count_params_macs", "net_config", "profile_net"]
