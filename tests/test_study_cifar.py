"""benchmarks/study_cifar.py and its package benchmarks/cifar_study/: width matching, random-net
acceptance, the report from a state, the command line."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import study_cifar  # noqa: E402  (the command line)
from cifar_study import helpers, matching, nets, settings, stages  # noqa: E402
from cifar_study.markdown import render_markdown  # noqa: E402
from cifar_study.results import collect_results  # noqa: E402
from cifar_study.runner import Study  # noqa: E402
from cifar_study.settings import QUICK, RESULTS  # noqa: E402


def test_mobilenet_v2_at_width_one_is_the_zoo_cifar_variant():
    from proxylessnas.nets.profile import count_params_macs
    from proxylessnas.train.target import zoo_net_for

    macs, params = nets.macs_params(*nets.mobilenet_v2_arch(1.0))
    zoo_params, zoo_macs = count_params_macs(zoo_net_for("mobilenet_v2", 10, 32).net_config)
    assert params == pytest.approx(zoo_params / 1e6, abs=1e-9)
    assert macs == pytest.approx(zoo_macs / 1e6, abs=1e-9)
    assert round(params * 1e6) == 2_236_682  # docs/train.md


def test_mobilenet_v2_width_scales_channels_and_keeps_the_head():
    space, arch = nets.mobilenet_v2_arch(0.5)
    assert space.stem.out_chs == 16
    assert [layer.out_chs for layer in space.layers][-1] == 160
    assert space.head.out_chs == 1280
    assert arch.metadata["width_mult"] == 0.5
    macs = [nets.macs_params(*nets.mobilenet_v2_arch(w))[0] for w in (0.35, 0.5, 0.75, 1.0)]
    assert macs == sorted(macs) and len(set(macs)) == 4


def test_distinct_widths_drops_widths_that_round_to_the_same_net():
    # 0.25 and 0.26 round every width to the same multiple of 8
    assert nets.distinct_widths([0.25, 0.26, 0.5, 0.5]) == [0.25, 0.5]


def test_closest_width_and_relative_gap():
    latencies = {"w0.35": 2.1, "w0.5": 2.6, "w0.75": 3.4}
    assert helpers.closest_to(latencies, 2.5) == "w0.5"
    assert helpers.closest_to(latencies, 3.1) == "w0.75"
    assert helpers.relative_gap(2.625, 2.5) == pytest.approx(0.05)


def test_accept_matched_keeps_random_order_not_closeness():
    candidates = [("a", 2.62), ("b", 2.30), ("c", 2.50), ("d", 2.40), ("e", 2.51)]
    # within +-5 % of 2.5: a (+4.8 %), c, d (-4 %), e; b is out; order kept, not sorted by gap
    assert helpers.accept_matched(candidates, 2.5, 0.05, 2) == ["a", "c"]
    assert helpers.accept_matched(candidates, 2.5, 0.05, 10) == ["a", "c", "d", "e"]
    assert helpers.accept_matched(candidates, 2.5, 0.01, 3) == ["c", "e"]


def test_rank_descending_shares_ties():
    assert helpers.rank_descending({"x": 50.0, "y": 60.0, "z": 50.0}) == {"y": 1, "x": 2, "z": 2}


def test_ops_differ_counts_layers():
    first = {"s1.b0": "mb_k3_e3", "s1.b1": "zero", "s2.b0": "mb_k5_e6"}
    second = {"s1.b0": "mb_k3_e3", "s1.b1": "mb_k3_e3", "s2.b0": "mb_k7_e6"}
    assert helpers.ops_differ(first, second) == 2
    assert helpers.ops_differ(first, first) == 0


def test_markdown_table_rows_and_rule():
    text = helpers.markdown_table(["net", "top-1 %"], [["searched", "44.58"], ["mbv2", "46.14"]])
    assert text.splitlines() == ["| net | top-1 % |", "|---|---|", "| searched | 44.58 |", "| mbv2 | 46.14 |"]


def test_dataset_spec_helpers():
    assert helpers.with_option("cifar10:/d", "limit_per_class=5") == "cifar10:/d?limit_per_class=5"
    assert helpers.with_option("cifar10:/d?resolution=32", "limit_per_class=5") == \
        "cifar10:/d?resolution=32&limit_per_class=5"
    assert helpers.dataset_folder("cifar10:/data/c10?limit_per_class=5") == Path("/data/c10")
    assert helpers.dataset_folder("demo") is None
    assert helpers.duration(125) == "2:05" and helpers.duration(3725) == "1:02:05"


def test_missing_data_folder_is_one_line_and_exit_code_2(tmp_path, capsys):
    code = study_cifar.main(["--quick", "--work", str(tmp_path / "w"),
                             "--data", f"cifar10:{tmp_path / 'absent'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: CIFAR-10 folder not found")
    assert not (tmp_path / "w").exists()


def test_study_space_matches_the_search_fingerprint():
    """The matching session prices nets with the table the searches built: same space, same file."""
    from proxylessnas import get_space

    space = get_space("proxyless-cifar", num_classes=10, resolution=32, in_chs=3, width_mult=0.5,
                      depths=[2, 2, 2, 2, 2, 1])
    assert nets.study_space().to_dict() == space.to_dict()
    search = [a for a in stages.search_arguments(FakeStudy(), settings.SEARCHES[0]) if a.startswith("space.")]
    assert search == list(settings.SPACE_ARGS)


class FakeStudy:
    """What building a command line reads of a study."""

    settings = QUICK
    search_data = "cifar10:x?limit_per_class=40"

    def show_path(self, path):
        return str(path)

    def search_dir(self, name):
        return Path("runs") / name


def test_dataset_folder_is_written_relative_to_the_repository(tmp_path):
    repo = settings.REPO
    assert helpers.repository_relative(f"cifar10:{repo.parent / 'x'}?limit_per_class=3", tmp_path) == \
        "cifar10:../x?limit_per_class=3"
    assert helpers.repository_relative("cifar10:data/c10", repo) == "cifar10:data/c10"
    assert helpers.repository_relative("demo", tmp_path) == "demo"


def fake_state(searched_top1: float) -> dict:
    """A finished study's state with made-up numbers (every unit the report reads)."""
    space = nets.study_space()
    cheap = {layer.label: layer.candidates[0].token for layer in space.searched_layers}
    units: dict = {}

    def unit(name, result):
        units[name] = {"result": result, "seconds": 1.0, "finished": "2026-11-29T23:00:00+00:00"}

    for index, job in enumerate(settings.SEARCHES):
        choices = dict(cheap)
        if job.name == "onnxruntime-low":
            choices["s1.b0"] = "mb_k7_e6"
        unit(f"search/{job.name}", {
            "job": {"name": job.name, "hardware": job.hardware, "target": job.target,
                    "strategy": job.strategy, "binary_mode": job.binary_mode},
            "command": f"proxyless search {job.name}", "wall_seconds": 100.0 + index, "resumed": False,
            "weight_steps": 12, "arch_path": f"runs/{job.name}/arch.json", "choices": choices,
            "measured_latency": 2.5, "unit": "MMACs" if job.hardware == "flops" else "ms",
            "target_latency_ms": None if job.hardware == "flops" else 2.5, "target_latency_table": 2.5,
            "measured_within_tolerance": True, "test_accuracy": 0.2})
        for backend in settings.CROSS_BACKENDS:
            latency = {"cpu-low": (2.4, 0.9), "onnxruntime-low": (2.6, 0.8)}.get(job.name, (2.5, 1.0))
            unit(f"measure/{job.name}/{backend}/0", {
                "median": latency[0 if backend == "torch" else 1], "p10": 0, "p90": 0, "command": "c"})
    for search in settings.MATCHED:
        names = [f"{search}-mobilenet_v2_w0.35", f"{search}-random1"]
        matched = {"searched": {"latency_ms": 2.5, "p10": 2.4, "p90": 2.6, "macs_m": 10.0, "params_m": 0.3},
                   names[0]: {"latency_ms": 2.55, "p10": 2.4, "p90": 2.6, "macs_m": 15.0, "params_m": 0.4},
                   names[1]: {"latency_ms": 2.7, "p10": 2.6, "p90": 2.8, "macs_m": 11.0, "params_m": 0.3}}
        unit(f"match/{search}", {"nets": matched, "mobilenet_v2": names[0], "random": names[1:],
                                 "baseline_latency": {"mobilenet_v2_w0.35": 2.55},
                                 "searched_latency_first_session": 2.5,
                                 "candidates_timed": 8, "pool_size": 20, "arch_paths": {}})
        unit(f"train/{search}", {"test_top1": searched_top1, "test_top5": 90.0})
        unit(f"train/{names[0]}", {"test_top1": 50.0, "test_top5": 91.0})
        unit(f"train/{names[1]}", {"test_top1": 40.0, "test_top5": 89.0})
    for name in ("onnxruntime-low", "flops-low", "cpu-low-two", "cpu-low-reinforce"):
        unit(f"train/{name}", {"test_top1": 45.0, "test_top5": 90.0})
    commands = [{"unit": "x", "command": "proxyless x"}]
    return {"version": 1, "mode": "quick", "units": units, "commands": commands}


def render(searched_top1: float) -> tuple[dict, str]:
    results = collect_results(fake_state(searched_top1), QUICK, "s", "t", "d", 2)
    return results, render_markdown(results)


def test_report_ranks_nets_and_says_whether_the_claim_holds():
    results, text = render(searched_top1=55.0)
    assert results["item3"]["cpu-low"]["searched_is_most_accurate"] is True
    row = "| **cpu-low** | searched | 2.500 (2.40-2.60) | +0.0 % | 10.00 | 0.300 | 55.00 | 90.00 | 1 |"
    assert row in text
    assert "| cpu-low-random1 | random | 2.700 (2.60-2.80) | +8.0 % |" in text
    assert "The claim (most accurate at equal latency) holds here." in text
    assert "Not matched within +-5 % in the confirmation session: cpu-low-random1" in text
    results, text = render(searched_top1=45.0)
    assert results["item3"]["cpu-high"]["searched_is_most_accurate"] is False
    assert "does **not** hold here" in text and "ranks 2 of 3" in text


def test_report_cross_table_marks_each_columns_best_and_counts_wins():
    _, text = render(searched_top1=55.0)
    # torch: cpu-low 2.4 is best; ONNX Runtime: onnxruntime-low 0.8 is best; MACs: all equal (cpu-low first)
    assert "**2.400**" in text and "**0.800**" in text
    assert "2 of 3 nets are the cheapest on their own target (cpu-low, onnxruntime-low)" in text
    assert "identical nets for cpu-low and flops-low" in text
    assert "cpu-low vs onnxruntime-low: 1" in text


def test_arch_character_averages_over_kept_blocks():
    assert nets.arch_character({"a": "mb_k3_e3", "b": "zero", "c": "mb_k7_e6"}) == (2, 5.0, 4.5)
    assert nets.arch_character({"a": "zero"}) == (0, 0.0, 0.0)


def test_backbone_baseline_puts_k3e6_in_every_block_of_the_study_backbone():
    space, arch = nets.backbone_mobilenet_v2_arch(0.5)
    assert space.to_dict()["layers"] == nets.study_space().to_dict()["layers"]
    assert {op.token for op in arch.choices.values()} == {"mb_k3_e6"}
    names = nets.baseline_nets((0.25, 0.26), (0.1, 0.5))
    assert list(names) == ["mobilenet_v2_w0.25", "mbv2_k3e6_w0.1", "mbv2_k3e6_w0.5"]


def tiny_costs():
    from proxylessnas import get_space
    from proxylessnas.hardware.cost import FlopsCostModel

    space = get_space("tiny")
    model = FlopsCostModel("macs")
    fixed, vectors = model.candidate_costs(space)
    return space, model, fixed, [[float(c) for c in v] for v in vectors]


def test_tilted_mean_matches_brute_force_enumeration():
    import itertools
    import math

    from proxylessnas import Arch

    space, model, fixed, layer_costs = tiny_costs()
    layers = space.searched_layers
    for beta in (0.0, 3.0, -2.0):
        total = weight_sum = 0.0
        for choice in itertools.product(*[range(len(layer.candidates)) for layer in layers]):
            arch = Arch.from_ops(space, [layer.candidates[i] for layer, i in zip(layers, choice)])
            cost = model.arch_cost(space, arch)
            weight = math.exp(-beta * cost)
            total, weight_sum = total + weight * cost, weight_sum + weight
        assert matching.tilted_mean(fixed, layer_costs, beta) == pytest.approx(total / weight_sum, rel=1e-9)


def test_tilt_for_mean_hits_the_target_and_sampling_follows_it():
    space, model, fixed, layer_costs = tiny_costs()
    low = fixed + sum(min(c) for c in layer_costs)
    high = fixed + sum(max(c) for c in layer_costs)
    target = low + 0.2 * (high - low)  # far below the uniform mean
    beta = matching.tilt_for_mean(fixed, layer_costs, target)
    assert beta > 0
    assert matching.tilted_mean(fixed, layer_costs, beta) == pytest.approx(target, rel=1e-9)
    samples = matching.sample_tilted(layer_costs, beta, 20000, seed=0)
    costs = [fixed + sum(layer_costs[l][j] for l, j in enumerate(choice)) for choice in samples]
    mean = sum(costs) / len(costs)
    spread = (sum((c - mean) ** 2 for c in costs) / len(costs)) ** 0.5
    assert abs(mean - target) < 4 * spread / len(costs) ** 0.5
    again = matching.sample_tilted(layer_costs, beta, 50, seed=3)
    assert matching.sample_tilted(layer_costs, beta, 50, seed=3) == again


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_stored_results_render_to_the_stored_report(mode):
    """The report of a stored study_cifar.json is its study_cifar.md, byte for byte."""
    folder = RESULTS / mode
    if not (folder / "study_cifar.json").is_file():
        pytest.skip(f"no stored {mode} results")
    results = json.loads((folder / "study_cifar.json").read_text())
    assert render_markdown(results) == (folder / "study_cifar.md").read_text()


def test_report_only_renders_the_state_of_the_work_folder(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "state.json").write_text(json.dumps(fake_state(searched_top1=55.0)))
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(stages, "RESULTS", tmp_path / "results")
    monkeypatch.setenv("PROXYLESS_CACHE", str(tmp_path / "cache"))  # quick mode points it at <work>/cache
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = study_cifar.main(["--quick", "--report-only", "--work", str(work),
                           "--data", f"cifar10:{tmp_path / 'data'}"])
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert code == 0
    folder = tmp_path / "results" / "quick"
    assert {p.name for p in folder.iterdir()} == {"study_cifar.json", "study_cifar.md",
                                                  "accuracy_vs_latency.png", "specialisation_diagrams.png"}
    assert "| **cpu-low** | searched | 2.500 (2.40-2.60) |" in (folder / "study_cifar.md").read_text()
    results = json.loads((folder / "study_cifar.json").read_text())
    assert results["item3"]["cpu-low"]["searched_is_most_accurate"] is True


def test_commands_are_the_ones_stored_with_the_full_results():
    """The command lines of searches, trainings and measurements, as the stored full study ran them."""
    stored_file = RESULTS / "full" / "study_cifar.json"
    if not stored_file.is_file():
        pytest.skip("no stored full results")
    stored = json.loads(stored_file.read_text())
    study = Study(settings.FULL, settings.REPO / "runs" / "study-full", stored["data"]["spec"], 2)
    for job in settings.SEARCHES:
        assert study.shown(stages.search_arguments(study, job)) == stored["searches"][job.name]["command"]
        arch = stored["searches"][job.name]["arch_path"]
        for backend in settings.CROSS_BACKENDS:
            arguments = stages.measure_arguments(study, job.name, arch, backend, 0)
            assert study.shown(arguments) == stored["cross"][job.name][backend]["command"]
    for name, training in stored["trainings"].items():
        out = study.train_dir(name)
        arguments = stages.train_arguments(study, training["arch_path"], out, training["seed"])
        assert study.shown(arguments) == training["command"]
