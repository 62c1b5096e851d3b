"""Library warnings print as one line each, never as the multi-line blocks that used to come
before the one-line error (issue 20, item 9: dataset cache, weight mismatch)."""

from __future__ import annotations

import io
import pickle
import warnings

import torch
from PIL import Image

from proxylessnas import Arch, get_space
from proxylessnas.cli import main
from proxylessnas.export import save_exported_weights
from proxylessnas.nets.config import net_config
from proxylessnas.nets.net import ProxylessNet
from proxylessnas.warning_lines import MAX_CHARS, one_line, one_line_warnings


def test_one_line_keeps_the_first_line_collapsed_and_short():
    assert one_line("\n\n  first   line\nsecond\n") == "first line"
    assert len(one_line("x" * 1000)) == MAX_CHARS and one_line("x" * 1000).endswith("...")


def test_each_warning_is_one_line_and_printed_once():
    stream = io.StringIO()
    with one_line_warnings(stream):
        for _ in range(3):
            warnings.warn("a library said this\n\nover several\nparagraphs", UserWarning, stacklevel=1)
        warnings.warn("another", RuntimeWarning, stacklevel=1)
    assert stream.getvalue().splitlines() == ["warning: a library said this", "warning: another"]


def test_cache_and_weight_warnings_before_an_error_are_one_line_each(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROXYLESS_CACHE", str(tmp_path / "cache"))
    for name, color in (("a", (200, 0, 0)), ("b", (0, 200, 0))):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), tuple(c + i for c in color)).save(tmp_path / "img" / name / f"{i}.png")
    space = get_space("tiny", num_classes=2, depths=[1, 1])
    arch = Arch.from_ops(space, [layer.candidates[0].token for layer in space.searched_layers])
    arch.save(tmp_path / "a.json")
    other = get_space("tiny", num_classes=5)  # another classifier (a warning) and other blocks (an error)
    ops = [layer.candidates[0].token for layer in other.searched_layers]
    weights = tmp_path / "w.safetensors"
    save_exported_weights(ProxylessNet(net_config(other, Arch.from_ops(other, ops))), weights)
    argv = ["export", str(tmp_path / "a.json"), "--format", "onnx", "--dataset",
            f"imagefolder:{tmp_path / 'img'}", "--weights", str(weights),
            "--out", str(tmp_path / "out" / "a.onnx")]
    assert main(argv) == 2  # builds the dataset cache first
    capsys.readouterr()
    for cache in (tmp_path / "cache" / "datasets").glob("*.pt"):  # a pickle torch will not load safely
        cache.write_bytes(pickle.dumps({"images": torch.zeros(1)}, protocol=4))
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("warning: dataset cache ") and "unreadable" in lines[0]
    assert lines[1] == f"warning: {weights}: classifier has another number of classes; " \
                       "it was not loaded"
    assert lines[2].startswith("error: weights do not fit this model")
    assert "weights_only" not in "\n".join(lines)
    assert not (tmp_path / "out").exists()
