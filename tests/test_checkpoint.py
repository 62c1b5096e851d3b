"""Checkpoints: atomic, weights_only, clear errors, exact random state."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _state() -> dict:
    return {"epoch": 3, "weights": {"w": torch.arange(6.0).view(2, 3)}, "names": ["a", "b"],
            "rng_state": capture_rng_state()}


def test_round_trip(tmp_path):
    path = tmp_path / "sub" / "checkpoint.pt"
    state = _state()
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["names"] == ["a", "b"]
    assert torch.equal(loaded["weights"]["w"], state["weights"]["w"])
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporary left behind


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"epoch": 2, "bad": Unpicklable()})
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_missing_file(tmp_path):
    with pytest.raises(ProxylessError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("keep", [0, 10, 200, -30])
def test_truncated_file_is_clear_error(tmp_path, keep):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state())
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(ProxylessError, match="checkpoint"):
        load_checkpoint(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(os.urandom(300))
    with pytest.raises(ProxylessError, match="corrupt"):
        load_checkpoint(path)


class Payload:
    """A pickled object whose loading would run code."""

    def __reduce__(self):
        return (os.system, ("echo should-never-run > pwned.txt",))


def test_code_carrying_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(ProxylessError, match="objects other than tensors"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned.txt").exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(ProxylessError):
        load_checkpoint(plain)
    assert not (tmp_path / "pwned.txt").exists()


def test_non_dict_checkpoint(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(ProxylessError, match="not a dict"):
        load_checkpoint(path)


def _draw() -> tuple:
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist()


def test_rng_state_round_trip_through_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's legacy state
    path = tmp_path / "rng.pt"
    save_checkpoint(path, {"rng_state": capture_rng_state()})
    expected = _draw()
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    assert _draw() != expected
    restore_rng_state(load_checkpoint(path)["rng_state"])
    assert _draw() == expected


def test_malformed_rng_state():
    with pytest.raises(ProxylessError, match="random-generator"):
        restore_rng_state({"python": {}})
