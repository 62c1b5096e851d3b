"""proxylessnas: hardware-aware neural architecture search (ProxylessNAS, Cai et al. 2019).

Public entry points: ``get_space``, ``Arch``, ``build_net``, ``SuperNet``, ``zoo.create``.
"""

from proxylessnas.errors import ProxylessError
from proxylessnas.nets import ProxylessNet, build_net
from proxylessnas.space import Arch, SearchSpace, get_space
from proxylessnas.version import __version__


def __getattr__(name: str):
    # The supernet pulls in more code; import it on first use.
    if name == "SuperNet":
        from proxylessnas.supernet import SuperNet

        return SuperNet
    raise AttributeError(f"module 'proxylessnas' has no attribute {name!r}")


__all__ = ["Arch", "ProxylessError", "ProxylessNet", "SearchSpace", "SuperNet", "build_net",
           "get_space", "__version__"]
