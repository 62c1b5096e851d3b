import json

import pytest

from proxylessnas.errors import ProxylessError
from proxylessnas.space import Arch, get_space


def _arch():
    space = get_space("tiny")
    return space, Arch.from_ops(space, ["mb_k3_e3", "zero", "mb_k5_e1", "mb_k3_e1"])


def test_round_trip(tmp_path):
    space, arch = _arch()
    arch.save(tmp_path / "a.json")
    loaded = Arch.load(tmp_path / "a.json")
    assert loaded == arch and loaded.indices(space) == arch.indices(space)


def test_arch_with_overrides_rebuilds_its_space(tmp_path):
    space = get_space("tiny", stage_widths=[8, 12])
    arch = Arch.from_ops(space, [layer.candidates[0] for layer in space.searched_layers])
    arch.save(tmp_path / "a.json")
    assert Arch.load(tmp_path / "a.json").resolve_space() == space


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["choices"].update({"s1.b0": "mb_k7_e3"}), "not a candidate"),
    (lambda d: d["choices"].pop("s1.b1"), "no op chosen"),
    (lambda d: d["choices"].update({"s9.b9": "zero"}), "unknown layer"),
    (lambda d: d.update({"schema_version": 9}), "schema_version"),
    (lambda d: d.update({"space": "proxyless-cifar"}), "arch is for space|no op chosen|unknown layer"),
    (lambda d: d["choices"].update({"s1.b0": "zero"}), "not a candidate"),
])
def test_invalid_arch_files(tmp_path, mutate, message):
    _, arch = _arch()
    data = arch.to_dict()
    mutate(data)
    (tmp_path / "a.json").write_text(json.dumps(data))
    with pytest.raises(ProxylessError, match=message):
        Arch.load(tmp_path / "a.json")


def test_malformed_and_missing(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProxylessError, match="malformed JSON"):
        Arch.load(tmp_path / "bad.json")
    with pytest.raises(ProxylessError, match="not found"):
        Arch.load(tmp_path / "missing.json")
