"""Pure helpers of benchmarks/study_cifar.py: width matching, random-net acceptance, tables."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "study_cifar.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("study_cifar", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["study_cifar"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("study_cifar", None)


def test_mobilenet_v2_at_width_one_is_the_zoo_cifar_variant(study):
    from proxylessnas.nets.profile import count_params_macs
    from proxylessnas.train.target import zoo_net_for

    macs, params = study.macs_params(*study.mobilenet_v2_arch(1.0))
    zoo_params, zoo_macs = count_params_macs(zoo_net_for("mobilenet_v2", 10, 32).net_config)
    assert params == pytest.approx(zoo_params / 1e6, abs=1e-9)
    assert macs == pytest.approx(zoo_macs / 1e6, abs=1e-9)
    assert round(params * 1e6) == 2_236_682  # docs/train.md


def test_mobilenet_v2_width_scales_channels_and_keeps_the_head(study):
    space, arch = study.mobilenet_v2_arch(0.5)
    assert space.stem.out_chs == 16
    assert [layer.out_chs for layer in space.layers][-1] == 160
    assert space.head.out_chs == 1280
    assert arch.metadata["width_mult"] == 0.5
    macs = [study.macs_params(*study.mobilenet_v2_arch(w))[0] for w in (0.35, 0.5, 0.75, 1.0)]
    assert macs == sorted(macs) and len(set(macs)) == 4


def test_distinct_widths_drops_widths_that_round_to_the_same_net(study):
    # 0.25 and 0.26 round every width to the same multiple of 8
    assert study.distinct_widths([0.25, 0.26, 0.5, 0.5]) == [0.25, 0.5]


def test_closest_width_and_relative_gap(study):
    latencies = {"w0.35": 2.1, "w0.5": 2.6, "w0.75": 3.4}
    assert study.closest_to(latencies, 2.5) == "w0.5"
    assert study.closest_to(latencies, 3.1) == "w0.75"
    assert study.relative_gap(2.625, 2.5) == pytest.approx(0.05)


def test_accept_matched_keeps_random_order_not_closeness(study):
    candidates = [("a", 2.62), ("b", 2.30), ("c", 2.50), ("d", 2.40), ("e", 2.51)]
    # within +-5 % of 2.5: a (+4.8 %), c, d (-4 %), e; b is out; order kept, not sorted by gap
    assert study.accept_matched(candidates, 2.5, 0.05, 2) == ["a", "c"]
    assert study.accept_matched(candidates, 2.5, 0.05, 10) == ["a", "c", "d", "e"]
    assert study.accept_matched(candidates, 2.5, 0.01, 3) == ["c", "e"]


def test_rank_descending_shares_ties(study):
    assert study.rank_descending({"x": 50.0, "y": 60.0, "z": 50.0}) == {"y": 1, "x": 2, "z": 2}


def test_ops_differ_counts_layers(study):
    first = {"s1.b0": "mb_k3_e3", "s1.b1": "zero", "s2.b0": "mb_k5_e6"}
    second = {"s1.b0": "mb_k3_e3", "s1.b1": "mb_k3_e3", "s2.b0": "mb_k7_e6"}
    assert study.ops_differ(first, second) == 2
    assert study.ops_differ(first, first) == 0


def test_markdown_table_rows_and_rule(study):
    text = study.markdown_table(["net", "top-1 %"], [["searched", "44.58"], ["mbv2", "46.14"]])
    assert text.splitlines() == ["| net | top-1 % |", "|---|---|", "| searched | 44.58 |", "| mbv2 | 46.14 |"]


def test_dataset_spec_helpers(study):
    assert study.with_option("cifar10:/d", "limit_per_class=5") == "cifar10:/d?limit_per_class=5"
    assert study.with_option("cifar10:/d?resolution=32", "limit_per_class=5") == \
        "cifar10:/d?resolution=32&limit_per_class=5"
    assert study.dataset_folder("cifar10:/data/c10?limit_per_class=5") == Path("/data/c10")
    assert study.dataset_folder("demo") is None
    assert study.duration(125) == "2:05" and study.duration(3725) == "1:02:05"


def test_missing_data_folder_is_one_line_and_exit_code_2(study, tmp_path, capsys):
    code = study.main(["--quick", "--work", str(tmp_path / "w"), "--data", f"cifar10:{tmp_path / 'absent'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: CIFAR-10 folder not found")
    assert not (tmp_path / "w").exists()


def test_study_space_matches_the_search_fingerprint(study):
    """The matching session prices nets with the table the searches built: same space, same file."""
    from proxylessnas.search.config import SearchConfig
    from proxylessnas.search.run import search_space

    class Data:
        num_classes, resolution, channels = 10, 32, 3

    config = SearchConfig().with_overrides(list(study.SPACE_ARGS))
    assert search_space(config, Data()).to_dict() == study.study_space().to_dict()
