import pytest
import torch

from proxylessnas import zoo
from proxylessnas.errors import ProxylessError
from proxylessnas.nets import build_net
from proxylessnas.nets.reference import load_reference_config, to_reference_state_dict
from proxylessnas.nets.weights import load_weights, save_weights

NAMES = ["proxyless_mobile", "proxyless_mobile_14", "proxyless_cpu", "proxyless_gpu"]


@pytest.mark.parametrize("name", NAMES)
def test_official_config_matches_zoo(official_dir, name):
    space, arch = load_reference_config(official_dir / f"{name}.config")
    entry = zoo.get_entry(name)
    assert space == entry.space()
    assert arch.choices == entry.arch().choices
    ours = zoo.create(name)
    imported = build_net(space, arch)
    assert [(k, v.shape) for k, v in imported.state_dict().items()] == \
        [(k, v.shape) for k, v in ours.state_dict().items()]


def test_cifar_tree_config_imports_as_the_zoo_net(official_dir):
    space, arch = load_reference_config(official_dir / "proxyless_cifar.config")
    assert space == zoo.get_entry("proxyless_cifar").space()
    assert arch.choices == zoo.get_entry("proxyless_cifar").arch().choices


@pytest.mark.parametrize("name", ["proxyless_gpu", "proxyless_mobile"])
def test_reference_checkpoint_layout_loads(tmp_path, name):
    torch.manual_seed(1)
    model = zoo.create(name, resolution=96).eval()
    for module in model.modules():  # make BN statistics non-trivial
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    reference = to_reference_state_dict(model, zoo.get_entry(name).space())
    assert "first_conv.conv.weight" in reference and "classifier.linear.weight" in reference
    assert "feature_mix_layer.bn.running_mean" in reference
    assert any(k.startswith("blocks.1.mobile_inverted_conv.depth_conv.conv") for k in reference)
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.items()}}, tmp_path / "ref.pth")
    loaded = zoo.create(name, resolution=96, pretrained_path=str(tmp_path / "ref.pth")).eval()
    x = torch.randn(2, 3, 96, 96)
    assert torch.equal(loaded(x), model(x))


def test_safetensors_round_trip_and_mismatch(tmp_path):
    model = zoo.create("proxyless_mobile", num_classes=10).eval()
    save_weights(model, tmp_path / "w.safetensors")
    other = zoo.create("proxyless_mobile", num_classes=10, pretrained_path=str(tmp_path / "w.safetensors"))
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(other.eval()(x), model(x))
    with pytest.raises(ProxylessError, match="do not fit"):
        load_weights(zoo.create("proxyless_gpu"), tmp_path / "w.safetensors")


def test_unsafe_and_corrupt_checkpoints_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"state_dict": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ProxylessError, match="refused"):
        load_weights(zoo.create("proxyless_mobile"), tmp_path / "evil.pth")
    model = zoo.create("proxyless_mobile")
    torch.save(model.state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ProxylessError, match="corrupt or truncated"):
        load_weights(model, tmp_path / "cut.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00")
    with pytest.raises(ProxylessError, match="corrupt or truncated"):
        load_weights(model, tmp_path / "cut.safetensors")
