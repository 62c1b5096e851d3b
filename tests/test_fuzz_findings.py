"""One test per bug the fuzz test (``test_fuzz_inputs.py``) found: each input once ended in a traceback,
an allocation of gigabytes or a replaced file; now it is one ``error:`` line and exit 2 (issue 20)."""

from __future__ import annotations

import json

import pytest

from proxylessnas import Arch, get_space
from proxylessnas.cli import main
from proxylessnas.errors import ProxylessError
from proxylessnas.nets.config import NetConfig, net_config
from proxylessnas.nets.net import net_from_config
from proxylessnas.space.arch import read_json


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("overrides, needle", [
    ({"depths": [1, "a"]}, "depths=[1, 'a'] holds 'a'"),
    ({"depths": None}, "depths=None is not a list of depths"),
    ({"head_width": "7"}, "head_width=7 is not a channel count"),
    ({"stage_widths": [8, 100_000]}, "holds 100000"),
    ({"candidates": 3}, "candidates=3 is not an op pattern"),
    ({"zero": "yes"}, "zero=yes is not true or false"),
    ({"num_classes": 10**9}, "is not a number of classes"),
])
def test_space_overrides_of_the_wrong_kind_are_one_line(overrides, needle):
    with pytest.raises(ProxylessError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        get_space("tiny", **overrides)


def tiny_arch() -> Arch:
    space = get_space("tiny")
    return Arch.from_ops(space, [layer.candidates[0].token for layer in space.searched_layers])


def net_dict() -> dict:
    return net_config(get_space("tiny"), tiny_arch()).to_dict()


@pytest.mark.parametrize("change, needle", [
    ({"stem_stride": None}, "stem_stride=None"),
    ({"head_chs": [16]}, "head_chs=[16]"),
    ({"blocks": True}, "'blocks' is not a list of objects"),
    ({"resolution": 10**6}, "resolution=1000000"),
    ({"stem_chs": 9}, "takes 8 channels, gets 9"),
])
def test_net_configs_are_checked_before_a_net_is_built(change, needle):
    with pytest.raises(ProxylessError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        NetConfig.from_dict({**net_dict(), **change})
    with pytest.raises(ProxylessError, match="unknown net config kind"):
        net_from_config({**net_dict(), "kind": ["a", "list"]})


@pytest.mark.parametrize("change, needle", [({"space": 7}, "'space' must be a space name"),
                                            ({"space_overrides": True}, "'space_overrides' must be an"),
                                            ({"metadata": [1]}, "'metadata' must be an object")])
def test_arch_files_of_the_wrong_shape_are_one_line(change, needle):
    data = tiny_arch().to_dict()
    with pytest.raises(ProxylessError, match=needle):
        Arch.from_dict({**data, **change})


@pytest.mark.parametrize("text, needle", [("[" * 100_000, "beyond the parser's limits"),
                                          ("1" * 5000, "beyond the parser's limits")])
def test_json_past_the_parser_limits_is_one_line(tmp_path, text, needle):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(ProxylessError, match=needle):
        read_json(tmp_path / "x.json", "arch file")


def test_line_breaks_in_a_value_never_break_the_error_line():
    line = ProxylessError("unknown space 'a\rb\x85c\u2028d\ne'", "w").line()
    assert len(line.splitlines()) == 1 and "\\r" in line and "\\x85" in line


@pytest.mark.parametrize("argv, needle", [
    (["latency", "predict", "1" * 5000, "--hardware", "flops"], "File name too long"),
    (["space", "show", "\x85"], "unknown search space '\\x85'"),
    (["train", "{tmp}/a.json", "--dataset", "synthetic:999999999", "--out", "{tmp}/run"],
     "would take 3576 GB"),
    (["search", "--dataset", "synthetic:64?resolution=4096", "--out", "{tmp}/run"], "would take 15 GB"),
    (["search", "--config", "{tmp}/big.yaml", "--out", "{tmp}/run"], "YAML beyond the parser's limits"),
    (["search", "--out", "{tmp}/run", "search.epochs=" + "1" * 5000], "search.epochs"),
])
def test_inputs_that_once_raised_are_one_line(tmp_path, capsys, argv, needle):
    tiny_arch().save(tmp_path / "a.json")
    (tmp_path / "big.yaml").write_text("search:\n  epochs: " + "1" * 5000 + "\n")
    before = sorted(tmp_path.rglob("*"))
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert needle in one_error_line(capsys)
    assert sorted(tmp_path.rglob("*")) == before


def test_export_ops_never_writes_into_a_folder_with_files(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text('{"mine": 1}')
    assert main(["latency", "export-ops", "--space", "tiny", "--out", str(tmp_path)]) == 2
    assert "the ops folder is not empty" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"mine": 1}


def test_import_replaces_an_existing_table_only_with_overwrite(tmp_path, capsys):
    yaml_table = tmp_path / "t.yaml"
    yaml_table.write_text("Conv-input:16x16x3-output:16x16x8: {count: 3, mean: 0.5, var: 0.01}\n")
    out = tmp_path / "table.json"
    out.write_text("an earlier table")
    assert main(["latency", "import", str(yaml_table), "--out", str(out)]) == 2
    assert "the table file exists" in one_error_line(capsys)
    assert out.read_text() == "an earlier table"
    assert main(["latency", "import", str(yaml_table), "--out", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["statistic"] == "mean"


@pytest.mark.parametrize("failure", [KeyError("0"), IndexError("pop from empty list"), TypeError("bad")])
def test_a_damaged_pickle_stream_is_one_line(tmp_path, monkeypatch, failure):
    """The unpickler of a damaged archive fails with its own exceptions; the user sees one line."""
    import torch

    from proxylessnas.errors import ProxylessError
    from proxylessnas.runtime.torch_files import read_torch_file

    path = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, path)

    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr(torch, "load", broken)
    with pytest.raises(ProxylessError, match="corrupt or truncated"):
        read_torch_file(path, "checkpoint")


def test_resume_of_a_config_yaml_beyond_the_parser_is_one_line(tmp_path, capsys):
    """A saved config.yaml nested too deep ends --resume with one line, not a RecursionError."""
    from proxylessnas.cli import main

    (tmp_path / "config.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert main(["search", "--resume", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err


def test_latency_reports_never_replace_their_inputs(tmp_path, capsys):
    from proxylessnas import get_space
    from proxylessnas.hardware.validate import sample_archs

    sample_archs(get_space("tiny"), 1)[0].save(tmp_path / "arch.json")
    before = (tmp_path / "arch.json").read_bytes()
    assert main(["latency", "predict", str(tmp_path / "arch.json"), "--hardware", "flops",
                 "--json", str(tmp_path / "arch.json")]) == 2
    assert "--json is one of this command's inputs" in one_error_line(capsys)
    arch = str(tmp_path / "arch.json")
    assert main(["latency", "measure", arch, "--json", arch]) == 2
    assert "--json is one of this command's inputs" in one_error_line(capsys)
    assert (tmp_path / "arch.json").read_bytes() == before
    assert main(["latency", "predict", str(tmp_path / "arch.json"), "--hardware", "flops",
                 "--json", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())
