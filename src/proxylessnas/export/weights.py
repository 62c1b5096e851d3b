"""Exported weights: safetensors with the net config in the metadata, and reading them back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from proxylessnas.errors import ProxylessError
from proxylessnas.finite import require_finite_weights
from proxylessnas.nets.net import ProxylessNet, net_from_config
from proxylessnas.nets.weights import load_weights, save_weights


def save_exported_weights(model: ProxylessNet, path: str | os.PathLike) -> Path:
    """``model``'s weights as safetensors (atomic), with ``net_config`` in the metadata; weights
    holding NaN or infinite values are refused."""
    require_finite_weights(model, str(path), "not written; export a model whose training did not diverge")
    return save_weights(model, path)


def load_exported_weights(path: str | os.PathLike) -> ProxylessNet:
    """Rebuild the net (chain or graph) from the config stored in a safetensors file, then load it.

    Only tensors and a JSON string are read: safetensors cannot carry code.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ProxylessError("weights file not found", str(path), "check the path")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ProxylessError(f"cannot read safetensors file ({err})", str(path),
                             "the file is corrupt or truncated: export it again") from None
    if "net_config" not in metadata:
        raise ProxylessError("safetensors file has no net_config metadata", str(path),
                             "give weights written by 'proxyless export' or save_weights")
    try:
        config = json.loads(metadata["net_config"])
    except json.JSONDecodeError:
        raise ProxylessError("malformed net_config metadata", str(path), "export the weights again") from None
    model = net_from_config(config, str(path))
    load_weights(model, path)
    return model.eval()
