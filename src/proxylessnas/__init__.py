"""proxylessnas: hardware-aware neural architecture search (ProxylessNAS, Cai et al. 2019)."""

__version__ = "0.1.0"
