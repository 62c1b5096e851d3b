from pathlib import Path

import pytest
import yaml

from proxylessnas import Arch, get_space
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.cost import TableCostModel
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.legacy import convert_legacy_key, import_legacy_yaml
from proxylessnas.nets.zoo import ZOO

SHARED = Path(__file__).resolve().parents[2] / "shared"
YAML = SHARED / "reference" / "official" / "mobile_trim.yaml"
pytestmark = pytest.mark.skipif(not YAML.is_file(), reason="reference table not available")


def test_import_covers_the_paper_space_at_224():
    table = import_legacy_yaml(YAML)
    assert len(table.entries) == 72
    assert table.statistic == "mean" and table.target.resolution == 224
    assert table.missing(space_keys(get_space("proxyless-imagenet")).unique()) == []


def test_hand_worked_arch_sum():
    """All searched layers mb_k3_e3 in the paper space: 1 stem + first block + 21 blocks + head + logits,
    the reference keys written out by hand."""
    raw = yaml.safe_load(YAML.read_text())

    def block(i, o, stride, skip):
        return f"expanded_conv-input:{i}-output:{o}-expand:3-kernel:3-stride:{stride}-idskip:{skip}"
    by_hand = [
        "Conv-input:224x224x3-output:112x112x32",
        "expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:3-stride:1-idskip:0",
        block("112x112x16", "56x56x24", 2, 0), *[block("56x56x24", "56x56x24", 1, 1)] * 3,
        block("56x56x24", "28x28x40", 2, 0), *[block("28x28x40", "28x28x40", 1, 1)] * 3,
        block("28x28x40", "14x14x80", 2, 0), *[block("14x14x80", "14x14x80", 1, 1)] * 3,
        block("14x14x80", "14x14x96", 1, 0), *[block("14x14x96", "14x14x96", 1, 1)] * 3,
        block("14x14x96", "7x7x192", 2, 0), *[block("7x7x192", "7x7x192", 1, 1)] * 3,
        block("7x7x192", "7x7x320", 1, 0),
        "Conv_1-input:7x7x320-output:7x7x1280",
        "Logits-input:7x7x1280-output:1000",
    ]
    expected = sum(raw[k]["mean"] for k in by_hand)
    assert len(by_hand) == 25
    space = get_space("proxyless-imagenet")
    arch = Arch.from_ops(space, ["mb_k3_e3"] * 21)
    model = TableCostModel(import_legacy_yaml(YAML))
    assert model.arch_cost(space, arch) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(76.048, abs=1e-3)


def test_zoo_mobile_lacks_three_keys():
    entry = ZOO["proxyless_mobile"]
    with pytest.raises(ProxylessError) as err:
        TableCostModel(import_legacy_yaml(YAML)).arch_cost(entry.space(), entry.arch())
    assert "3 key(s)" in err.value.what


def test_key_conversion():
    key = convert_legacy_key("expanded_conv-input:28x28x40-output:14x14x80-expand:6-kernel:5-stride:2"
                             "-idskip:0")
    assert (key.kernel_size, key.expand_ratio, key.stride, key.residual) == (5, 6, 2, False)
    assert convert_legacy_key("Conv-input:224x224x3-output:112x112x32").stride == 2
    with pytest.raises(ProxylessError):
        convert_legacy_key("Pool-input:7x7x3")


def test_bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ProxylessError):
        import_legacy_yaml(path)
