"""Searching the ``pyramid-tree`` space: a CPU-sized variant builds, its supernet steps and
derives, every strategy runs end to end (tiny variant, synthetic data), the found net exports."""

from __future__ import annotations

import json

import pytest
import torch

from proxylessnas import build_net, get_space
from proxylessnas.cli import main
from proxylessnas.export import export_model
from proxylessnas.nets import graph_net_config, profile_net
from proxylessnas.nets.pyramid_tree_zoo import encode_cell
from proxylessnas.space.arch import Arch
from proxylessnas.space.pyramid_tree import LEAF_PATHS
from proxylessnas.supernet.factory import build_supernet

TINY = {"blocks_per_stage": 1, "alpha": 4, "stem_width": 4, "resolution": 16, "num_classes": 4}
CLI = ["--space", "pyramid-tree", "--hardware", "flops", "--epochs", "2", "--warmup-epochs", "1",
       "--no-progress", "space.blocks_per_stage=1", "space.alpha=4", "space.stem_width=4",
       "search.steps_per_epoch=2", "data.batch_size=16", "data.valid_batch_size=16", "data.valid_size=32",
       "data.eval_batch_size=64", "arch.update_every=1", "arch.skip_first_epoch=false", "run.threads=1",
       "run.eval_batches=1", "run.bn_recalibration_batches=1", "run.plots=false"]
STRATEGIES = {
    "two": ["--binary-mode", "two"],
    "full_v2": ["--binary-mode", "full_v2"],
    "full": ["--binary-mode", "full"],
    "reinforce": ["--strategy", "reinforce", "reinforce.samples=2"],
    "darts": ["search.mixed_op=darts"],
    "gumbel": ["search.mixed_op=gumbel"],
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_cpu_sized_variant():
    space = get_space("pyramid-tree", blocks_per_stage=2, alpha=12)
    assert len(space.decisions) == 6 * 12 and space.head.in_chs == 4 * 28
    arch = Arch.from_ops(space, ["sep_conv_3x3"] * len(space.decisions))
    params = sum(row.params for row in profile_net(graph_net_config(space, arch)))
    assert 0 < params < 200_000


def test_the_cpu_search_recipe_searches_that_variant():
    from proxylessnas.search.config import load_config

    config = load_config("pyramid-tree-cpu")
    assert config.space.options == {"blocks_per_stage": 2, "alpha": 12}
    assert (config.search.binary_mode, config.search.weight_paths) == ("two", "uniform")
    space = get_space("pyramid-tree", **config.space.options, resolution=config.data.resolution)
    assert len(space.decisions) == 72 and space.resolution == 16


def test_supernet_steps_and_derives_with_its_weights():
    torch.manual_seed(0)
    space = get_space("pyramid-tree", **TINY)
    supernet = build_supernet(space)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 4, (4,))
    supernet.sample_arch_step("two", torch.Generator().manual_seed(1))
    torch.nn.functional.cross_entropy(supernet(x), y).backward()
    supernet.finish_arch_step()
    assert sum(float(a.grad.abs().sum()) for a in supernet.arch_parameters() if a.grad is not None) > 0
    arch = supernet.export()
    assert set(arch.choices) == {d.label for d in space.decisions}
    supernet.set_path(arch.indices(space))
    net = supernet.derive(arch).eval()
    supernet.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), supernet(x))


def test_found_net_exports_to_onnx_with_parity(tmp_path):
    torch.manual_seed(0)
    space = get_space("pyramid-tree", **TINY)
    ops = [d.candidates[i % len(d.candidates)] for i, d in enumerate(space.decisions)]
    arch = Arch.from_ops(space, ops)
    net = build_net(space, arch).eval()
    result = export_model(net, tmp_path / "tree.onnx", "onnx", in_chs=3, resolution=16)
    assert result.parity.passed and result.parity.max_abs_diff < 1e-4
    assert len(encode_cell([arch.choices[f"s1.b0.e{p}"].token for p in LEAF_PATHS])) == 17


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_search_runs_end_to_end_with_every_strategy(tmp_path, name):
    out = tmp_path / name
    code = main(["search", "--dataset", "synthetic:96?resolution=16", "--out", str(out), *CLI,
                 *STRATEGIES[name]])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    space = get_space("pyramid-tree", **TINY)
    arch = Arch.load(out / "arch.json", space)
    assert set(summary["choices"]) == set(arch.choices) == {d.label for d in space.decisions}


def test_diagram_groups_blocks_into_stages_and_draws_the_first_tree_of_each(tmp_path):
    from matplotlib.figure import Figure

    from proxylessnas.viz.cell_diagram import CellDiagram, skeleton
    from proxylessnas.viz.diagram import plot_architecture
    from proxylessnas.viz.style import op_label
    from proxylessnas.viz.tree_cell import short_label

    space = get_space("pyramid-tree", blocks_per_stage=3, alpha=6, stem_width=4)
    arch = Arch.from_ops(space, [d.candidates[i % 7] for i, d in enumerate(space.decisions)])
    boxes = [box.lines[0] for box in skeleton(space)]
    assert boxes == ["stem", "s1: 3 x cell", "s2: 3 x cell", "s3: 3 x cell", "head"]
    diagram = CellDiagram(space)
    assert diagram.trees == ["s1.b0", "s2.b0", "s3.b0"]
    ax = Figure().add_subplot()
    diagram.draw(ax, arch)
    texts = [t.get_text() for t in ax.texts]
    for block in diagram.trees:  # every leaf edge of each drawn tree carries its chosen op
        chosen = sorted(short_label(op_label(arch.op(space, f"{block}.e{path}"))) for path in LEAF_PATHS)
        assert f"{block}: tree cell" in texts
        title = texts.index(f"{block}: tree cell")  # drawn after the tree's nodes, before its edges
        assert sorted(texts[title + 1:title + 13]) == chosen
    assert plot_architecture(space, arch, tmp_path / "tree.png").stat().st_size > 0


def test_measured_table_and_macs_models_price_the_tree_space(tmp_path):
    from proxylessnas.hardware.build import build_lut
    from proxylessnas.hardware.cost import TableCostModel
    from proxylessnas.hardware.graph_cost import GraphFlopsCostModel
    from proxylessnas.hardware.keys import space_keys
    from proxylessnas.hardware.measure import Backend, build_block
    from proxylessnas.nets import count_params_macs

    space = get_space("pyramid-tree", **TINY)
    keys = space_keys(space).unique()
    assert {k.kind for k in keys} >= {"sep_conv", "dil_conv", "max_pool", "bn_relu_conv", "chunk", "pad_skip"}
    for key in keys:  # every key's timed block runs on its input shape
        ih, iw, ic = key.input
        assert build_block(key).eval()(torch.randn(1, ic, ih, iw)).shape[1] == key.output[2]
    table = build_lut(space, Backend(), tmp_path / "tree.json", seconds_per_key=0.002, min_samples=4,
                      rounds=2, progress=False)
    arch = Arch.from_ops(space, [d.candidates[i % 7] for i, d in enumerate(space.decisions)])
    assert TableCostModel(table).arch_cost(space, arch) > 0
    macs = count_params_macs(graph_net_config(space, arch))[1]
    assert GraphFlopsCostModel().arch_cost(space, arch) == pytest.approx(macs / 1e6)
