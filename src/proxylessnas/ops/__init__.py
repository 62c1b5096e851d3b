"""Plain blocks with no search knowledge."""

from proxylessnas.ops.blocks import (
    Classifier,
    ConvBNAct,
    MBConv,
    Residual,
    init_weights,
    make_divisible,
)

__all__ = ["Classifier", "ConvBNAct", "MBConv", "Residual", "init_weights", "make_divisible"]
