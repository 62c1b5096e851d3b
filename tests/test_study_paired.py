"""The paired study (``study_cifar.py --paired``): unit names, the paired differences and the report."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from cifar_study import paired, settings  # noqa: E402


def test_first_seed_keeps_the_plain_unit_name_later_seeds_get_their_own():
    assert paired.training_unit("cpu-low", 0, 0) == "train/cpu-low"
    assert paired.training_unit("cpu-low-random3", 2, 0) == "train/cpu-low-random3-seed2"


def test_paired_differences_match_a_direct_computation():
    searched, rival = [52.0, 50.5, 49.0], [53.0, 49.0, 48.0]
    p = paired.paired_differences(searched, rival)
    assert p["differences"] == [-1.0, 1.5, 1.0]
    assert p["mean"] == pytest.approx(0.5)
    assert p["std"] == pytest.approx(statistics.stdev([-1.0, 1.5, 1.0]))
    assert p["mean_after_selection"] == pytest.approx(1.25)
    assert p["searched_better"] == 2 and p["min"] == -1.0 and p["max"] == 1.5
    with pytest.raises(ValueError):
        paired.paired_differences([1.0], [1.0, 2.0])


def fake_state(searched: list[float], rivals: dict[str, list[float]], seeds=(0, 1, 2)) -> dict:
    """Every unit the paired report reads, with made-up numbers; the rivals' later seeds only where given."""
    units: dict = {}

    def unit(name, result):
        units[name] = {"result": result, "seconds": 1.0, "finished": "2026-12-05T01:00:00+00:00"}

    for job in settings.PAIRED_SEARCHES:
        names = [f"{job.name}-{rival}" for rival in rivals]
        unit(f"search/{job.name}", {"target_latency_ms": 2.5, "wall_seconds": 300.0, "weight_steps": 420,
                                    "test_accuracy": 0.305,
                                    "convergence": {"normalised_entropy": 0.21, "collapse": None}})
        nets = {"searched": {"latency_ms": 2.5, "macs_m": 10.0},
                **{name: {"latency_ms": 2.55, "macs_m": 11.0} for name in names}}
        unit(f"match/{job.name}", {"nets": nets, "random": names})
        for k, seed in enumerate(seeds):
            unit(paired.training_unit(job.name, seed, seeds[0]), {"test_top1": searched[k]})
            for name, values in zip(names, rivals.values()):
                if k < len(values):
                    unit(paired.training_unit(name, seed, seeds[0]), {"test_top1": values[k]})
    return {"units": units}


def test_report_picks_the_rival_on_the_first_seed_and_pairs_the_others():
    state = fake_state([50.0, 51.0, 52.0], {"random1": [49.0], "random2": [50.5, 52.0, 50.0]})
    results = paired.paired_results(state, (0, 1, 2))["cpu-low"]
    assert results["rival"] == "cpu-low-random2"
    assert results["first_seed_rank"] == 2
    assert results["paired"]["differences"] == [-0.5, -1.0, 2.0]
    assert results["paired"]["mean_after_selection"] == pytest.approx(0.5)
    text = paired.render_paired({"settings": {**settings.PAIRED.__dict__, "paired_seeds": [0, 1, 2],
                                              "arch_args": list(settings.PAIRED.arch_args)},
                                 "machine": {"cpu": "cpu", "cores": 2, "commit": "abc"},
                                 "units_finished": ["2026-12-05T01:00", "2026-12-05T02:00"],
                                 "searches": {"cpu-low": results}})
    assert "| cpu-low | 2.50 | 2.50 / 2.55 | 0.21 | 30.5 | 2 of 3 | 50.00 / 51.00 / 52.00 |" in text
    assert "**+0.17** +- 1.61" in text
    assert "do not share one sign" in text and "**not** shown better" in text


def test_report_says_worse_plainly_when_every_seed_loses():
    state = fake_state([48.0, 47.0, 46.0], {"random1": [50.0, 49.0, 48.0]})
    results = paired.paired_results(state, (0, 1, 2))["cpu-high"]
    assert paired.paired_reading("cpu-high", results, [0, 1, 2]).endswith(
        "the searched net is **worse** at every seed: the search did not beat a random net of equal latency.")
