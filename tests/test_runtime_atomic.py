"""runtime: atomic writes (content kinds, file modes, nothing left behind on failure) and devices."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.atomic import atomic_replace, atomic_write, write_json_atomic
from proxylessnas.runtime.devices import resolve_device
from proxylessnas.runtime.runfolder_lock import TEMP_FILE


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_bytes_text_and_writer_content(tmp_path):
    assert atomic_write(tmp_path / "a" / "b.bin", b"\x00\x01") == tmp_path / "a" / "b.bin"
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "t.txt", "caf\u00e9\n", fsync=True)
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "caf\u00e9\n"
    atomic_write(tmp_path / "w.pt", lambda handle: torch.save({"x": torch.ones(2)}, handle))
    assert torch.equal(torch.load(tmp_path / "w.pt", weights_only=True)["x"], torch.ones(2))
    write_json_atomic(tmp_path / "d.json", {"k": [1, 2]})
    assert (tmp_path / "d.json").read_text() == json.dumps({"k": [1, 2]}, indent=2) + "\n"


def test_shared_unless_private(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "private", "x", shared=False)
        atomic_write(tmp_path / "shared", "x")
        write_json_atomic(tmp_path / "arch.json", {})
    finally:
        os.umask(umask)
    assert _mode(tmp_path / "arch.json") == 0o644
    assert _mode(tmp_path / "private") == 0o600  # as tempfile.mkstemp makes it
    assert _mode(tmp_path / "shared") == 0o644  # as a plain open would


def test_a_failed_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, broken)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_atomic_replace_checks_before_it_replaces(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("old")
    with pytest.raises(ValueError), atomic_replace(path, suffix=".onnx") as temporary:
        assert TEMP_FILE.match(temporary.name) and temporary.parent == tmp_path  # swept after a kill
        temporary.write_text("new")
        raise ValueError("parity check failed")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    with atomic_replace(path, suffix=".onnx") as temporary:
        temporary.write_text("new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ProxylessError, match="unknown device 'gpu0'") as error:
        resolve_device("gpu0", "run.device", "run.device=cpu")
    assert error.value.where == "run.device"
    if not torch.cuda.is_available():
        with pytest.raises(ProxylessError, match="CUDA is not available") as error:
            resolve_device("cuda:1", "run.device", "run.device=cpu")
        assert error.value.line().endswith("use run.device=cpu")
