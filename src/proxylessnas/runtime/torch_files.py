"""Reading torch files safely: ``torch.load(weights_only=True)`` with one-line errors, and files
of another kind (an arch JSON, safetensors weights, a TorchScript model, ...) named as what they
are. Torch's own advice to load with ``weights_only=False``, and its warnings, never reach the
user.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from proxylessnas.errors import ProxylessError

PICKLE = "a plain pickle (or a torch file of the pre-1.6 format)"
SAFETENSORS = "a safetensors weights file"
WRONG_KIND_FIX = "give a checkpoint written by proxylessnas (last.pt / best.pt of 'proxyless train', " \
                 "checkpoint.pt of 'proxyless search')"
TORCH_ADVICE = re.compile(r"weights.only|torch\.load|file an issue|trusted source", re.IGNORECASE)


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint",
                    map_location: str | torch.device = "cpu", *, legacy: bool = False,
                    wrong_kind_fix: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors that never pass on torch's own
    advice (to load with ``weights_only=False``) nor its warnings. ``legacy`` also reads torch's
    pre-1.6 (non-zip) format; otherwise a file that is no torch zip archive is refused, named by
    :func:`file_kind` when it is a file of another kind (``wrong_kind_fix`` then says what to give,
    a checkpoint of a run by default)."""
    path = Path(path)
    if not path.exists():
        raise ProxylessError(f"{what} not found", str(path), "check the path")
    if not path.is_file():
        raise ProxylessError(f"{what} is not a file", str(path), "give the path of a .pt file")
    kind = file_kind(path)
    if kind is not None and not (legacy and kind == PICKLE):
        raise ProxylessError(f"this is {kind}, not a {what}", str(path), wrong_kind_fix or WRONG_KIND_FIX)
    if not legacy and not zipfile.is_zipfile(path):  # torch.save writes a zip whose directory is at the end
        raise ProxylessError(f"corrupt or truncated {what} (not a complete torch archive)", str(path),
                             "the file is damaged or was cut short; use another one")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"GLOBAL ([\w.]+)", str(err))  # the class or function it would have called
        if refused:
            raise ProxylessError(f"refused to load the {what}: it holds objects other than tensors and plain "
                                 f"data ({refused.group(1)})", str(path),
                                 "only load files written by proxylessnas, or plain state dicts") from None
        if kind is not None:  # a plain pickle that is no torch file either
            raise ProxylessError(f"this is {kind}, not a {what}", str(path),
                                 wrong_kind_fix or WRONG_KIND_FIX) from None
        raise ProxylessError(f"corrupt {what} ({_reason(err)})", str(path),
                             "the file is damaged; use another one") from None
    # a damaged pickle stream fails inside the unpickler with whatever its stack or memo gives
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError, TypeError,
            AttributeError, struct.error) as err:
        raise ProxylessError(f"corrupt or truncated {what} ({_reason(err)})", str(path),
                             "the file is damaged or was cut short; use another one") from None


def file_kind(path: Path) -> str | None:
    """What a file that should be a torch archive is instead ("an arch JSON", "a safetensors
    weights file", ...), from its first bytes; None when it may be a torch archive (or is
    unrecognisable: corrupt)."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head:
        return "an empty file"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return None  # damaged: torch.load says how
        if any("/code/" in name or name.endswith("constants.pkl") for name in names):
            return "a TorchScript model"
        return None if any(name.endswith("data.pkl") for name in names) else "a zip archive of another kind"
    header_size = int.from_bytes(head[:8], "little")  # safetensors: u64 size, then a JSON header
    if head[8:9] == b"{" and 0 < header_size <= path.stat().st_size - 8:
        return SAFETENSORS
    if path.suffix == ".onnx":
        return "an ONNX model"
    if head.lstrip()[:1] in (b"{", b"["):
        return _json_kind(path)
    if head[:1] == b"\x80":
        return PICKLE
    return "a text file" if _is_text(head) else None


def _is_text(head: bytes) -> bool:
    """Printable UTF-8 (tabs and line breaks allowed; a character cut off at the end allowed)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.reason != "unexpected end of data":
            return False
        text = head[:err.start].decode("utf-8")
    return bool(text) and all(c.isprintable() or c in "\t\n\r\f" for c in text)


def _json_kind(path: Path) -> str | None:
    """"an arch JSON", "a latency table", "a JSON file", or None when it is no JSON after all."""
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and {"space", "choices"} <= data.keys():
        return "an arch JSON"
    if isinstance(data, dict) and str(data.get("kind", "")).endswith("latency_table"):
        return "a latency table"
    return "a JSON file"


def _reason(err: BaseException) -> str:
    """The first line of a torch error that is not torch's advice (about ``weights_only``), cut to
    120 characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if not TORCH_ADVICE.search(line)]
    return (useful[0] if useful else type(err).__name__)[:120]
