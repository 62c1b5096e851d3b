"""The ``pyramid-tree`` space and the paper's CIFAR-10 model ``proxyless_cifar``."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from proxylessnas import zoo
from proxylessnas.errors import ProxylessError
from proxylessnas.nets import GraphNet, profile_net
from proxylessnas.nets.pyramid_tree_zoo import PROXYLESS_CIFAR_CELLS, decode_cell, encode_cell
from proxylessnas.ops.tree_blocks import PadSkip, channel_shuffle
from proxylessnas.space import get_space, parse_op
from proxylessnas.space.pyramid_tree import LEAF_PATHS, block_widths

PARAMS = 5_731_530  # the reference release's net, built from its config (issue 18)
MACS = 1_213_155_872  # 1,213.2 M at 32x32, FLOPs / 2 of torch.utils.flop_counter


@pytest.fixture(scope="module")
def cifar_net():
    torch.set_num_threads(1)
    return zoo.create("proxyless_cifar").eval()


def test_proxyless_cifar_has_the_published_size(cifar_net):
    assert isinstance(cifar_net, GraphNet)
    assert sum(p.numel() for p in cifar_net.parameters()) == PARAMS
    rows = profile_net(cifar_net.net_config)
    assert sum(r.params for r in rows) == PARAMS
    assert sum(r.macs for r in rows) == MACS
    assert round(MACS / 1e6, 1) == 1213.2


def test_counted_macs_agree_with_the_flop_counter(cifar_net):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = cifar_net(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 10)
    assert counter.get_total_flops() == 2 * MACS


def test_backbone_widths_are_pyramidnet_with_even_cells():
    widths = block_widths(16, 18, 84, 4)
    inner = [w for w, _ in widths]
    assert len(widths) == 54 and inner[:6] == [18, 18, 20, 22, 24, 24]
    assert (inner[17], inner[35], inner[53]) == (44, 72, 100)
    assert all(outer == 4 * w and w % 2 == 0 for w, outer in widths)


def test_space_has_12_leaf_decisions_a_block():
    space = get_space("pyramid-tree")
    assert len(space.decisions) == 54 * 12 and len(space.edges) == 1 + 54 * 23
    assert [d.label for d in space.decisions[:12]] == [f"s1.b0.e{p}" for p in LEAF_PATHS]
    assert space.node_shapes()[space.output].height == 8
    assert space.edge("s2.b0.shortcut").stride == 2 and space.edge("s2.b0.root").stride == 2


def test_cell_strings_round_trip():
    assert len(PROXYLESS_CIFAR_CELLS) == 54
    for cell in PROXYLESS_CIFAR_CELLS:
        assert encode_cell(decode_cell(cell)) == cell
    assert decode_cell("7m.di.7m 5d.55.77")[:5] == [
        "sep_conv_7x7", "max_pool_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_3x3"]
    with pytest.raises(ProxylessError, match="malformed cell string"):
        decode_cell("7m.di.7m 5d.55.7x")


@pytest.mark.parametrize("token", ["sep_conv_3x3", "dil_conv_3x3", "max_pool_3x3", "bn", "chunk_1",
                                   "pad_skip", "bn_conv_1x1", "bn_relu_conv_1x1", "bn_relu_conv_3x3_g2"])
def test_tree_tokens_round_trip(token):
    assert parse_op(token).token == token


@pytest.mark.parametrize("text", ["bn_relu_conv_3x3_g1", "bn_conv_3x5", "chunk_01", "sep_conv_4x4"])
def test_bad_tree_tokens(text):
    with pytest.raises(ProxylessError):
        parse_op(text)


def test_shuffle_and_padded_shortcut():
    x = torch.arange(4.0).view(1, 4, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0.0, 2.0, 1.0, 3.0]
    y = PadSkip(2, 5, 2)(torch.ones(1, 2, 4, 4))
    assert y.shape == (1, 5, 2, 2) and y[:, 2:].abs().sum() == 0 and y[:, :2].eq(1).all()


def test_bad_space_options_are_errors():
    with pytest.raises(ProxylessError, match="not tree-cell leaf ops"):
        get_space("pyramid-tree", candidates="nor_conv_3x3")
    with pytest.raises(ProxylessError, match="even input side"):
        get_space("pyramid-tree", blocks_per_stage=1, alpha=4, resolution=30)


def test_zoo_show_prints_the_totals(capsys):
    from proxylessnas.cli import main

    assert main(["zoo", "show", "proxyless_cifar", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["resolution"], shown["params"], shown["macs"]) == (32, PARAMS, MACS)
    assert len(shown["layers"]) == 1 + 54 * 23 + 1


def test_training_target_and_latency_of_the_zoo_net():
    from proxylessnas.train.target import build_target

    net, description = build_target("proxyless_cifar", 4, 16)
    assert isinstance(net, GraphNet) and description == {"kind": "zoo", "name": "proxyless_cifar"}
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 4)
    entry = zoo.get_entry("proxyless_cifar")
    assert entry.arch().metadata == {"zoo": "proxyless_cifar"} and entry.space().name == "pyramid-tree"


def test_space_list_and_show_name_the_count_of_architectures(capsys):
    from proxylessnas.cli import main

    assert main(["space", "list"]) == 0
    assert "4.20e+547" in capsys.readouterr().out  # 7^648 overflows a float
    assert main(["space", "show", "pyramid-tree", "--resolution", "64"]) == 0
    out = capsys.readouterr().out
    assert "648 decisions" in out and "about 4.20e+547 architectures" in out and "s3.b17.e111" in out
