"""Latency tables: identity by resolved space settings, the unit check for every table format, and
messages that say what is wrong instead of "latency table not found" (issue 20, items 7-9)."""

from __future__ import annotations

import json

import pytest
import yaml

from proxylessnas import Arch, get_space
from proxylessnas.cli import main
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.build import build_lut
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.measure import Backend
from proxylessnas.hardware.targets import cached_table_path, load_table

SPELLED = {"num_classes": 10, "in_chs": 3}  # resolution left at tiny's default, 16
RESTATED = {"num_classes": 10, "resolution": 16}


def full_table(space, provenance=None) -> LatencyTable:
    keys = space_keys(space).unique()
    entries = {str(k): LatencyStats.from_samples([0.1 + 0.01 * i]) for i, k in enumerate(keys)}
    return LatencyTable(TableTarget.of(space), provenance or {"device": "test"}, entries)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_table_is_accepted_for_the_same_space_spelled_another_way():
    table = full_table(get_space("tiny", **SPELLED))
    table.check_target(get_space("tiny", **RESTATED))
    table.check_target(get_space("tiny", num_classes=10, in_chs=3, resolution=16, zero=True))
    with pytest.raises(ProxylessError, match="latency table is for tiny"):
        table.check_target(get_space("tiny", num_classes=5))
    with pytest.raises(ProxylessError, match="resolution 16, not 32"):
        table.check_target(get_space("tiny", num_classes=10, resolution=32))


def test_predict_with_a_table_of_the_same_space_spelled_another_way(tmp_path, capsys):
    full_table(get_space("tiny", **SPELLED)).save(tmp_path / "t.json")
    space = get_space("tiny", **RESTATED)
    ops = [layer.candidates[0].token for layer in space.searched_layers]
    Arch.from_ops(space, ops).save(tmp_path / "a.json")
    assert main(["latency", "predict", str(tmp_path / "a.json"), "--hardware", str(tmp_path / "t.json")]) == 0
    assert " ms on " in capsys.readouterr().out


def test_a_build_resumes_a_table_of_the_same_space_spelled_another_way(tmp_path):
    backend = Backend("torch", "cpu", 1, 1)
    path = tmp_path / "t.json"
    full_table(get_space("tiny", **SPELLED), backend.provenance()).save(path)
    before = path.read_bytes()
    table = build_lut(get_space("tiny", **RESTATED), backend, path, progress=False)
    assert path.read_bytes() == before  # complete: nothing measured, nothing rewritten
    assert len(table.entries) == len(space_keys(get_space("tiny")).unique())
    assert cached_table_path(get_space("tiny", **SPELLED), backend) == \
        cached_table_path(get_space("tiny", **RESTATED), backend)


def test_a_table_whose_space_cannot_be_built_is_one_line(tmp_path):
    data = full_table(get_space("tiny")).to_dict()
    data["target"]["space_overrides"] = {"depths": [1, "two"]}
    (tmp_path / "t.json").write_text(json.dumps(data))
    with pytest.raises(ProxylessError, match="the table's space cannot be built"):
        load_table(tmp_path / "t.json").check_target(get_space("tiny"))


@pytest.mark.parametrize("unit, ok", [("ms", True), ("furlongs", False), (["ms"], False)])
def test_legacy_yaml_goes_through_the_unit_check(tmp_path, unit, ok):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"unit": unit, "Conv-input:16x16x3-output:16x16x8":
                                    {"count": 3, "mean": 0.5, "var": 0.01}}))
    if ok:
        assert load_table(path).statistic == "mean"
    else:
        with pytest.raises(ProxylessError, match="unknown latency unit"):
            load_table(path)


def test_our_table_format_in_yaml_has_every_check_of_json(tmp_path):
    data = full_table(get_space("tiny")).to_dict()
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(data))
    assert load_table(path).entries == full_table(get_space("tiny")).entries
    data["unit"] = "furlongs"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProxylessError, match="unknown latency unit 'furlongs'"):
        load_table(path)


@pytest.mark.parametrize("entry, needle", [({"count": 0, "mean": 1.0, "var": 0.0}, "no samples"),
                                           ({"count": 3, "mean": 1.0, "var": float("inf")}, "non-finite"),
                                           ({"count": float("inf"), "mean": 1.0, "var": 0.0}, "not numeric")])
def test_legacy_entries_are_checked(tmp_path, entry, needle):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"Conv-input:16x16x3-output:16x16x8": entry}))
    with pytest.raises(ProxylessError, match=needle):
        load_table(path)


@pytest.mark.parametrize("argv, needle", [
    (["latency", "validate", "--hardware", "flops"], "'flops' is counted, not measured: it has no latency"),
    (["latency", "validate", "--hardware", "params", "--space", "tiny"], "'params' is counted"),
    (["latency", "validate", "--hardware", "{tmp}"], "is a folder, not a latency table"),
    (["latency", "validate", "--hardware", "{tmp}/absent.json"], "unknown hardware"),
    (["latency", "predict", "proxyless_cpu", "--hardware", "{tmp}"], "is a folder, not a latency table"),
    (["latency", "build", "--space", "tiny", "--out", "{tmp}"], "is a folder; give a file name"),
    (["latency", "build", "--space", "tiny", "--out", "{tmp}/new/"], "is a folder; give a file name"),
])
def test_messages_say_what_is_wrong(tmp_path, capsys, argv, needle):
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    line = one_line_error(capsys)
    assert needle in line and "latency table not found" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target, needle", [
    ({"space": "tiny", "space_overrides": {}, "resolution": 0, "batch_size": 1}, "target.resolution=0"),
    ({"space": "tiny", "space_overrides": [], "resolution": 16, "batch_size": 1}, "space_overrides"),
    ({"space": 5, "space_overrides": {}, "resolution": 16, "batch_size": 1}, "target space 5"),
    ({"space": "tiny", "resolution": 16, "batch_size": True}, "target.batch_size=True"),
    (None, "no 'target' object"),
])
def test_table_targets_are_checked(tmp_path, target, needle):
    data = full_table(get_space("tiny")).to_dict()
    data["target"] = target
    (tmp_path / "t.json").write_text(json.dumps(data))
    with pytest.raises(ProxylessError, match=needle):
        load_table(tmp_path / "t.json")
