"""Exports as a set: another net's export under the same name is refused (or written beside it),
never mixed; the model card keeps the entry of every file still on disk (issue 20, item 6)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from proxylessnas import Arch, get_space
from proxylessnas.cli import main
from proxylessnas.export import save_exported_weights
from proxylessnas.export.fileset import NetIdentity, plan_export, weights_digest
from proxylessnas.nets.config import net_config
from proxylessnas.nets.net import ProxylessNet


def tiny_weights(path, seed: int, num_classes: int = 4, name: str = "tiny_set"):
    torch.manual_seed(seed)
    space = get_space("tiny", num_classes=num_classes)
    arch = Arch.from_ops(space, [layer.candidates[0].token for layer in space.searched_layers])
    save_exported_weights(ProxylessNet(net_config(space, arch, name=name)), path)
    return str(path)


@pytest.fixture
def nets(tmp_path) -> dict[str, str]:
    """Three weights files: a, b (a's config, other weights) and c (another config)."""
    return {"a": tiny_weights(tmp_path / "a.safetensors", 0),
            "b": tiny_weights(tmp_path / "b.safetensors", 1),
            "c": tiny_weights(tmp_path / "c.safetensors", 0, num_classes=7)}


def export(source: str, fmt: str, out, *extra: str) -> int:
    return main(["export", source, "--format", fmt, "--out", str(out), *extra])


def digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def card_of(folder, base: str = "net") -> dict:
    return json.loads((folder / f"{base}.card.json").read_text())


@pytest.mark.parametrize("other", ["b", "c"], ids=["other weights", "other config"])
def test_another_net_under_the_same_name_is_refused_and_nothing_changes(tmp_path, nets, capsys, other):
    out = tmp_path / "exp"
    assert export(nets["a"], "onnx", out / "net.onnx") == 0
    before = digests(out)
    capsys.readouterr()
    assert export(nets[other], "torchscript", out / "net.torchscript.pt") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: 'net' in this folder is already the export of")
    assert "--overwrite" in err[0]
    assert digests(out) == before


def test_the_same_net_joins_the_set_and_the_card_keeps_every_file_on_disk(tmp_path, nets):
    out = tmp_path / "exp"
    assert export(nets["a"], "torchscript", out / "net.torchscript.pt") == 0
    assert export(nets["a"], "onnx", out / "net.onnx") == 0
    assert export(nets["a"], "torchscript", out / "net.torchscript.pt") == 0  # again: still both listed
    card = card_of(out)
    assert {fmt: entry["file"] for fmt, entry in card["exports"].items()} == {
        "onnx": "net.onnx", "torchscript": "net.torchscript.pt"}
    assert card["weights_sha256"] == weights_digest(load_file(out / "net.safetensors"))
    (out / "net.onnx").unlink()  # a file gone from disk leaves the card on the next export
    assert export(nets["a"], "torchscript", out / "net.torchscript.pt") == 0
    assert set(card_of(out)["exports"]) == {"torchscript"}


def test_another_net_is_written_beside_under_its_own_name(tmp_path, nets):
    out = tmp_path / "exp"
    assert export(nets["a"], "onnx", out / "net.onnx") == 0
    before = digests(out)
    assert export(nets["c"], "onnx", out / "net7.onnx") == 0
    assert {k: v for k, v in digests(out).items() if k in before} == before
    assert card_of(out)["num_classes"] == 4 and card_of(out, "net7")["num_classes"] == 7


def test_overwrite_replaces_the_whole_set(tmp_path, nets):
    out = tmp_path / "exp"
    assert export(nets["a"], "onnx", out / "net.onnx") == 0
    assert export(nets["a"], "torchscript", out / "net.torchscript.pt") == 0
    assert export(nets["b"], "onnx", out / "net.onnx", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "net.card.json", "net.onnx", "net.safetensors"]  # a's TorchScript file went with its set
    card = card_of(out)
    assert set(card["exports"]) == {"onnx"}
    assert plan_export(out / "net.onnx", "onnx", NetIdentity(card["net_config"], card["weights_sha256"])).card


def test_a_file_no_card_lists_is_never_replaced(tmp_path, nets, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"a training checkpoint")
    assert export(nets["a"], "torchscript", run / "best.pt") == 2
    assert "best.pt exists and no model card of this folder lists it" in capsys.readouterr().err
    assert (run / "best.pt").read_bytes() == b"a training checkpoint"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt"]


def test_a_card_that_cannot_be_read_is_not_replaced(tmp_path, nets, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "net.card.json").write_text("{not json")
    assert export(nets["a"], "onnx", out / "net.onnx") == 2
    assert "net.card.json is not a model card" in capsys.readouterr().err
    assert (out / "net.card.json").read_text() == "{not json" and not (out / "net.onnx").exists()


def test_same_format_under_another_file_name_is_refused(tmp_path, nets, capsys):
    out = tmp_path / "exp"
    assert export(nets["a"], "torchscript", out / "net.pt") == 0
    assert export(nets["a"], "torchscript", out / "net.torchscript.pt") == 2
    assert "this set's torchscript export is already net.pt" in capsys.readouterr().err


def test_a_name_without_a_stem_is_refused(tmp_path, nets, capsys):
    assert export(nets["a"], "onnx", tmp_path / ".onnx") == 2
    assert "has no name before its suffix" in capsys.readouterr().err
    assert list(tmp_path.glob(".onnx*")) == []


def test_the_default_name_stays_inside_exported(tmp_path, monkeypatch):
    tiny_weights(tmp_path / "w.safetensors", 0, name="../../escape")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert main(["export", str(tmp_path / "w.safetensors"), "--format", "onnx"]) == 0
    assert sorted(p.name for p in (tmp_path / "work" / "exported").iterdir() if p.name[0] != ".") == [
        "escape.card.json", "escape.onnx", "escape.safetensors"]
    assert not (tmp_path / "escape.onnx").exists() and not (tmp_path.parent / "escape.onnx").exists()
