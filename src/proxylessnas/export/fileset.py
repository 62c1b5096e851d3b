"""The files of one export as a set: model file(s), ``<base>.safetensors`` and ``<base>.card.json``.

``<base>`` is the output path up to the first dot of its name (``exported/net.onnx`` and
``exported/net.torchscript.pt`` share ``exported/net``). Before anything is written,
:func:`plan_export` reads what the folder already holds under that base:

* nothing: a new set;
* the same net (same net config and weights digest): the new format joins the set, and the card
  keeps the entry of every other model file still on disk;
* another net, a card that cannot be read, an ``--out`` file no card lists, or another file of the
  same format: refused with one line, unless ``overwrite``: then the new set replaces the old one
  (the old files are removed only after the new ones are written).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.export.card import CARD_KIND

KEPT_WHEN_MISSING = ("dataset", "accuracy", "arch")  # card fields an export of the same net may not know


def export_base(out: Path) -> Path:
    """``out`` up to the first dot of its name: the stem shared by the files of its set."""
    stem = out.name.split(".")[0]
    if not stem:
        raise ProxylessError(f"'{out.name}' has no name before its suffix", str(out),
                             "give the file a name, e.g. net.onnx")
    return out.with_name(stem)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class NetIdentity:
    """What makes two exports the same net: the net config and (when known) the weights digest."""

    net_config: Any
    weights_sha256: str | None

    @classmethod
    def of(cls, model) -> NetIdentity:
        return cls(json.loads(json.dumps(model.config())), weights_digest(model.state_dict()))

    def differs(self, other: NetIdentity) -> str | None:
        """How ``other`` is another net (None when it is the same one)."""
        if self.net_config != other.net_config:
            return "another net config"
        if self.weights_sha256 and other.weights_sha256 and self.weights_sha256 != other.weights_sha256:
            return "the same net config with other weights"
        return None


def _weights_identity(path: Path) -> NetIdentity | None:
    """The identity of an exported safetensors file (None when it cannot be read as one)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            config = json.loads((handle.metadata() or {})["net_config"])
        return NetIdentity(config, weights_digest(load_file(str(path))))
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError):
        return None


def _card_files(card: dict, folder: Path) -> dict[str, Path]:
    """Format -> model file of a card's ``exports`` (entries naming no plain file are skipped)."""
    exports = card.get("exports")
    files = {}
    for fmt, entry in (exports.items() if isinstance(exports, dict) else ()):
        name = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name:
            files[fmt] = folder / name
    return files


@dataclass
class ExportPlan:
    """Where the set's files go, the card the new export joins (None: a new set) and the files of a
    replaced set to remove once the new ones are written."""

    base: Path
    card: dict | None = None
    stale: list[Path] = field(default_factory=list)

    @property
    def weights_path(self) -> Path:
        return self.base.with_name(self.base.name + ".safetensors")

    @property
    def card_path(self) -> Path:
        return self.base.with_name(self.base.name + ".card.json")

    def merged_card(self, card: dict, fmt: str) -> dict:
        """``card`` plus what the joined set's card knows: the entries of its other model files still
        on disk, an earlier latency and the dataset fields this export does not know."""
        if self.card is None:
            return card
        old = self.card
        on_disk = {f for f, path in _card_files(old, self.base.parent).items() if f != fmt and path.is_file()}
        card["exports"] = {**{f: old["exports"][f] for f in sorted(on_disk)}, **card["exports"]}
        if not isinstance(card.get("latency"), dict) and isinstance(old.get("latency"), dict):
            card["latency"] = old["latency"]
        for key in KEPT_WHEN_MISSING:
            if card.get(key) is None and old.get(key) is not None:
                card[key] = old[key]
        old_input = old.get("input") if isinstance(old.get("input"), dict) else {}
        if card["input"].get("normalisation") is None and old_input.get("normalisation") is not None:
            card["input"]["normalisation"] = old_input["normalisation"]
        return card

    def remove_stale(self, written: set[Path]) -> None:
        for path in self.stale:
            if path not in written:
                path.unlink(missing_ok=True)


def plan_export(out: Path, fmt: str, ours: NetIdentity, *, overwrite: bool = False) -> ExportPlan:
    """Check what ``out``'s folder holds under its base name before anything is written (see the
    module docstring); a conflict is a one-line ProxylessError unless ``overwrite``."""
    from proxylessnas.space.arch import read_json

    plan = ExportPlan(export_base(out))
    old_card, theirs, reason = None, None, None
    if plan.card_path.exists():
        try:
            old_card = read_json(plan.card_path, "model card")
        except ProxylessError:
            old_card = None
        readable = isinstance(old_card, dict) and old_card.get("kind") == CARD_KIND
        if not readable or "net_config" not in old_card:
            old_card, reason = None, f"{plan.card_path.name} is not a model card this package can read"
        else:
            digest = old_card.get("weights_sha256")
            if not isinstance(digest, str) and plan.weights_path.is_file():
                on_disk = _weights_identity(plan.weights_path)
                digest = on_disk.weights_sha256 if on_disk is not None else None
            theirs = NetIdentity(old_card["net_config"], digest)
    elif plan.weights_path.exists():
        theirs = _weights_identity(plan.weights_path)
        if theirs is None:
            reason = f"{plan.weights_path.name} is not a weights file this package can read"
    listed = _card_files(old_card, out.parent) if old_card else {}
    if reason is None and theirs is not None and (how := theirs.differs(ours)):
        reason = f"'{plan.base.name}' in this folder is already the export of {how}"
    elif reason is None and out.exists() and out not in listed.values():
        reason = f"{out.name} exists and no model card of this folder lists it"
    elif reason is None and fmt in listed and listed[fmt] != out and listed[fmt].is_file():
        reason = f"this set's {fmt} export is already {listed[fmt].name}"
    if reason is None:
        plan.card = old_card
        return plan
    if not overwrite:
        raise ProxylessError(reason, str(out), "give --out another name (the export is written beside "
                                               "it), or pass --overwrite to replace that export")
    plan.stale = [*listed.values(), plan.weights_path, plan.card_path]
    return plan
