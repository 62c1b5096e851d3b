"""Checkpoints: atomic, weights_only, clear errors, exact random state."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.checkpoint import (
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


# files of another kind, and torch's own advice ---------------------------------------------------------
def _arch_json(path):
    from proxylessnas import Arch, get_space

    space = get_space("tiny")
    Arch.from_ops(space, [layer.candidates[0].token for layer in space.searched_layers]).save(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", ["an arch JSON", "a safetensors weights file", "a TorchScript model",
                                  "an empty file", "a plain pickle", "a zip archive of another kind"])
def test_a_file_of_another_kind_is_named_as_what_it_is(tmp_path, kind):
    from safetensors.torch import save_file

    path = tmp_path / "given.pt"  # the suffix a checkpoint has: only the content tells
    if kind == "an arch JSON":
        _arch_json(path)
    elif kind == "a safetensors weights file":
        save_file({"w": torch.zeros(3)}, str(path))
    elif kind == "a TorchScript model":
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    elif kind == "an empty file":
        path.write_bytes(b"")
    elif kind == "a plain pickle":
        path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    else:
        np.savez(tmp_path / "arrays.npz", a=np.zeros(2))
        (tmp_path / "arrays.npz").rename(path)
    with pytest.raises(ProxylessError) as caught:
        load_checkpoint(path)
    line = caught.value.line()
    assert line.startswith(f"error: this is {kind}") and ", not a checkpoint (" in line
    assert "corrupt" not in line and "give a checkpoint written by proxylessnas" in line


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script / save, to make the files
def test_torch_advice_and_warnings_never_reach_the_user(tmp_path, monkeypatch, capsys):
    import warnings

    from proxylessnas.cli import main
    from proxylessnas.nets.weights import read_state_dict

    monkeypatch.chdir(tmp_path)
    torch.save({"weights": Payload()}, tmp_path / "zip.pt")
    torch.save({"weights": Payload()}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "script.pt"))
    (tmp_path / "raw.pth").write_bytes(pickle.dumps({"x": Payload()}, protocol=4))
    expected = {"zip.pt": "refused to load the checkpoint: it holds objects other than tensors and plain "
                          "data (posix.system)",
                "legacy.pt": "this is a plain pickle (or a torch file of the pre-1.6 format), not a "
                             "checkpoint",
                "script.pt": "this is a TorchScript model, not a checkpoint",
                "raw.pth": "this is a plain pickle"}
    for name, message in expected.items():
        for read in (load_checkpoint, read_state_dict):
            with warnings.catch_warnings(record=True) as caught, pytest.raises(ProxylessError) as error:
                warnings.simplefilter("always")
                read(tmp_path / name)
            assert caught == [], (name, [str(w.message) for w in caught])
            assert "weights_only" not in error.value.line() and "Re-running" not in error.value.line()
        assert main(["eval", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "pwned.txt").exists()


def test_eval_of_an_arch_json_says_what_it_is_and_weights_read_safetensors_by_content(tmp_path, capsys):
    from safetensors.torch import save_file

    from proxylessnas.cli import main
    from proxylessnas.nets.weights import read_state_dict

    _arch_json(tmp_path / "arch.json")
    assert main(["eval", str(tmp_path / "arch.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: this is an arch JSON, not a checkpoint ({tmp_path / 'arch.json'})")
    assert err.count("\n") == 1
    save_file({"w": torch.arange(3.0)}, str(tmp_path / "weights.pt"))
    assert torch.equal(read_state_dict(tmp_path / "weights.pt")["w"], torch.arange(3.0))
