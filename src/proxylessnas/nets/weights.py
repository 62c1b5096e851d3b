"""Weights on disk: our safetensors files and the reference release's checkpoints.

Torch checkpoints are read with ``torch.load(weights_only=True)`` only: a file from someone
else cannot run code here. Our format is safetensors with the net config in its metadata, so
:func:`load_exported_weights` rebuilds the net from the file alone (``proxyless export`` writes
it with :func:`save_exported_weights`, ``proxyless eval`` and ``train`` read it).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.net import ProxylessNet, net_from_config
from proxylessnas.nets.pyramid_tree_reference import (
    from_tree_reference_state_dict,
    is_tree_reference_state_dict,
)
from proxylessnas.nets.reference import from_reference_state_dict, is_reference_state_dict
from proxylessnas.runtime.atomic import atomic_replace
from proxylessnas.runtime.finite import require_finite_weights
from proxylessnas.runtime.torch_files import SAFETENSORS, file_kind, read_torch_file

SAFETENSORS_SUFFIX = ".safetensors"


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s state dict as safetensors (atomically), with its config if it has one."""
    from safetensors.torch import save_file

    metadata = {"format": "proxylessnas"}
    if hasattr(model, "config"):
        metadata["net_config"] = json.dumps(model.config())
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_replace(path) as temporary:
        save_file(state, temporary, metadata=metadata)
    return Path(path)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a torch checkpoint, in this package's key layout."""
    path = Path(path)
    if not path.is_file():
        raise ProxylessError("weights file not found", str(path), "check the path")
    if path.suffix == SAFETENSORS_SUFFIX or file_kind(path) == SAFETENSORS:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ProxylessError(f"cannot read safetensors file ({err})", str(path),
                                 "the file is corrupt or truncated: write it again") from None
    data = read_torch_file(path, "weights file", legacy=True,  # old releases use the pre-1.6 format
                           wrong_kind_fix="give a .safetensors file or a torch state dict (.pt / .pth)")
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ProxylessError("checkpoint holds no state dict", str(path),
                             "give a file with {'state_dict': {name: tensor}} or a state dict")
    if is_tree_reference_state_dict(data):
        data = from_tree_reference_state_dict(data, str(path))
    elif is_reference_state_dict(data):
        data = from_reference_state_dict(data, str(path))
    return data


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights into ``model``; every key must match. A classifier of another size is
    skipped with a warning (fine-tuning to new classes keeps a fresh classifier)."""
    state = read_state_dict(path)
    own = model.state_dict()
    skipped = [k for k in state if k.startswith("classifier.") and k in own
               and state[k].shape != own[k].shape]
    for key in skipped:
        state[key] = own[key]
    if skipped:
        warnings.warn(f"{path}: classifier has another number of classes; it was not loaded",
                      stacklevel=2)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        detail = (f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; "
                  if missing else "") + (
                  f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}"
                  if unexpected else "")
        raise ProxylessError(f"weights do not fit this model ({detail.strip('; ')})", str(path),
                             "load weights saved from the same architecture")
    bad = [k for k in own if state[k].shape != own[k].shape]
    if bad:
        raise ProxylessError(
            f"shape mismatch for {bad[0]}: file {tuple(state[bad[0]].shape)}, model "
            f"{tuple(own[bad[0]].shape)}", str(path), "load weights saved from the same architecture")
    model.load_state_dict(state)
    return model


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
