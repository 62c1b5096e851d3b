import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from proxylessnas import zoo
from proxylessnas.nets import ProxylessNet, build_net, count_params_macs, profile_net
from proxylessnas.space import Arch, get_space

PUBLISHED = {  # PAPER.md section 5: params (M), MACs (M) at 224x224, 1000 classes
    "proxyless_mobile": (4.08, 320.4),
    "proxyless_cpu": (4.36, 439.2),
    "proxyless_gpu": (7.12, 465.3),
    "proxyless_mobile_14": (6.86, 580.9),
    "mobilenet_v2": (3.50, 300.0),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_params_and_macs(name):
    model = zoo.create(name)
    params, macs = count_params_macs(model.net_config)
    assert params == sum(p.numel() for p in model.parameters())
    want_params, want_macs = PUBLISHED[name]
    assert params / 1e6 == pytest.approx(want_params, rel=0.005)
    assert macs / 1e6 == pytest.approx(want_macs, rel=0.005)


@pytest.mark.parametrize("name", ["proxyless_mobile", "proxyless_gpu"])
def test_macs_cross_check_with_torch_flop_counter(name):
    model = zoo.create(name).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    # torch counts 2 FLOPs per multiply-accumulate of convs and matmuls (pooling not counted)
    assert counter.get_total_flops() == 2 * count_params_macs(model.net_config)[1]


def test_per_layer_profile_matches_modules():
    model = zoo.create("proxyless_cpu")
    rows = profile_net(model.net_config)
    blocks = [r for r in rows if r.label not in ("stem", "head", "classifier")]
    assert [r.params for r in blocks] == [sum(p.numel() for p in b.parameters()) for b in model.blocks]


def test_zero_blocks_dropped_and_residuals():
    space = get_space("tiny")
    arch = Arch.from_ops(space, ["mb_k3_e3", "zero", "mb_k5_e1", "mb_k3_e1"])
    net = build_net(space, arch)
    labels = [b.label for b in net.net_config.blocks]
    assert labels == ["s0.b0", "s1.b0", "s2.b0", "s2.b1"]
    assert [blk.shortcut for blk in net.blocks] == [True, False, True, True]  # stem 8 -> first 8
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_config_rebuilds_same_module():
    torch.manual_seed(0)
    net = zoo.create("proxyless_mobile", num_classes=10, resolution=64).eval()
    rebuilt = ProxylessNet.from_config(net.config()).eval()
    assert list(rebuilt.state_dict()) == list(net.state_dict())
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(rebuilt(x), net(x))
    assert net.config()["schema_version"] == 1


def test_paper_initialisation():
    torch.manual_seed(0)
    net = zoo.create("proxyless_gpu")
    conv = net.head.conv
    std = (2.0 / conv.out_channels) ** 0.5
    assert conv.weight.std().item() == pytest.approx(std, rel=0.05)
    assert torch.all(net.stem.bn.weight == 1) and torch.all(net.stem.bn.bias == 0)
    assert net.stem.bn.eps == 1e-3 and net.stem.bn.momentum == 0.1


def test_zoo_entry_at_a_width_scales_like_mobilenet_v2():
    entry = zoo.get_entry("mobilenet_v2")
    assert entry.widths() == entry.space_overrides
    # make_divisible(c * 0.5, 8); the head kept below width 1
    assert entry.widths(0.5) == {"stem_width": 16, "first_width": 8,
                                 "stage_widths": [16, 16, 32, 48, 80, 160], "head_width": 1280}
    assert entry.widths(1.5)["head_width"] == 1920
    space = entry.space(10, 32, width_mult=0.5, family="proxyless-cifar", in_chs=3)
    assert space.name == "proxyless-cifar" and space.stem.stride == 1 and space.stem.out_chs == 16
    arch = entry.arch(10, 32, width_mult=0.5, family="proxyless-cifar")
    assert arch.metadata == {"zoo": "mobilenet_v2", "width_mult": 0.5}
    assert entry.arch().metadata == {"zoo": "mobilenet_v2"}
    plain = get_space("proxyless-imagenet", num_classes=1000, resolution=224, **entry.space_overrides)
    assert entry.space().to_dict() == plain.to_dict()
