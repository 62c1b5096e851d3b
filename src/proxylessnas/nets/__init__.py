"""Standalone nets from (space, arch) or a net config; the model zoo; reference-format import."""

from proxylessnas.nets.config import BlockConfig, NetConfig, net_config

# registers the graph-space builder, config kind and profile with the functions above
from proxylessnas.nets.graph_net import GraphNet, GraphNetConfig, graph_net_config  # noqa: E402, I001
from proxylessnas.nets.net import ProxylessNet, build_net, net_from_config
from proxylessnas.nets.op_registry import build_op, op_params_macs
from proxylessnas.nets.profile import LayerProfile, count_params_macs, profile_net

__all__ = ["BlockConfig", "GraphNet", "GraphNetConfig", "LayerProfile", "NetConfig", "ProxylessNet",
           "build_net", "build_op", "count_params_macs", "graph_net_config", "net_config",
           "net_from_config", "op_params_macs", "profile_net"]
