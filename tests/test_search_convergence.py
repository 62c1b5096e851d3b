"""Convergence of the architecture distribution: the measures against brute force, the warnings,
and one short real search whose metrics rows, summary.json and printed summary carry them."""

from __future__ import annotations

import json
import math

import pytest
import torch

from proxylessnas.cli import main
from proxylessnas.convergence_measures import (
    ENTROPY_WARNING_THRESHOLD,
    argmax_changes,
    mean_max_probability,
    normalised_entropy,
)
from proxylessnas.errors import ProxylessError
from proxylessnas.search.convergence import (
    CHAIN_PARAMETER_FREE_OPS,
    collapse_warning,
    convergence_summary,
    convergence_warning,
    format_convergence,
)
from proxylessnas.search.finish import format_summary

NB201_PARAMETER_FREE_OPS = {"none", "skip_connect", "avg_pool_3x3"}


def brute_entropy(p: list[float]) -> float:
    return -sum(v * math.log(v) for v in p if v > 0)


def test_uniform_is_one_and_one_hot_is_zero():
    uniform = [[1 / k] * k for k in (2, 4, 7)]
    assert normalised_entropy(uniform) == pytest.approx(1.0)
    assert mean_max_probability(uniform) == pytest.approx((1 / 2 + 1 / 4 + 1 / 7) / 3)
    one_hot = [[0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0] * 6 + [1.0]]
    assert normalised_entropy(one_hot) == 0.0
    assert mean_max_probability(one_hot) == 1.0
    # tensors and {label: probs} give the same numbers
    tensors = [torch.full((k,), 1 / k, dtype=torch.float64) for k in (2, 4, 7)]
    assert normalised_entropy(tensors) == pytest.approx(1.0)
    assert normalised_entropy({"a": [0.5, 0.5], "b": [1.0, 0.0]}) == pytest.approx(0.5)


def test_normalised_entropy_by_hand_and_by_brute_force():
    # by hand: H([.5, .5]) = ln 2, H([1]) left out (one candidate), H([.25]*4) = ln 4
    # -> (ln 2 + ln 4) / (ln 2 + ln 4) = 1; H([.9, .1]) = 0.325083 -> 0.325083 / ln 2 = 0.468996
    assert normalised_entropy([[0.5, 0.5], [1.0], [0.25] * 4]) == pytest.approx(1.0)
    assert normalised_entropy([[0.9, 0.1]]) == pytest.approx(0.468996, abs=1e-6)
    assert normalised_entropy([[0.9, 0.1], [1.0]]) == pytest.approx(0.468996, abs=1e-6)
    assert mean_max_probability([[0.9, 0.1], [0.2, 0.3, 0.5], [1.0]]) == pytest.approx(0.7)
    assert normalised_entropy([[1.0], [1.0]]) == 0.0  # nothing to decide
    generator = torch.Generator().manual_seed(0)
    probs = [torch.softmax(torch.randn(k, generator=generator, dtype=torch.float64) * 2, 0).tolist()
             for k in (2, 3, 5, 7, 7)]
    expected = sum(brute_entropy(p) for p in probs) / sum(math.log(len(p)) for p in probs)
    assert normalised_entropy(probs) == pytest.approx(expected, rel=1e-12)
    assert 0.0 < normalised_entropy(probs) < 1.0
    assert mean_max_probability(probs) == pytest.approx(sum(max(p) for p in probs) / len(probs))


def test_argmax_changes():
    assert argmax_changes(None, {"a": "x", "b": "y"}) == 0
    assert argmax_changes({"a": "x", "b": "y", "c": "z"}, {"c": "x", "a": "x", "b": "w"}) == 2
    assert argmax_changes([0, 1, 2], [0, 2, 2]) == 1
    with pytest.raises(ProxylessError, match="different decisions"):
        argmax_changes({"a": "x"}, {"b": "x"})
    with pytest.raises(ProxylessError, match="2 decisions before, 3 now"):
        argmax_changes([0, 1], [0, 1, 2])


def rows_with(final_probs: dict[str, list[float]], arches: list[dict[str, str]]) -> list[dict]:
    """Rows as older runs wrote them (no convergence keys): computed from probs and arch."""
    return [{"epoch": i + 1, "arch_steps": 10, "arch": arch, "probs": final_probs}
            for i, arch in enumerate(arches)]


def test_convergence_summary_from_rows_without_the_new_keys():
    arches = [{"a": "x", "b": "y"}, {"a": "z", "b": "y"}, {"a": "z", "b": "y"}]
    summary = convergence_summary(rows_with({"a": [0.5, 0.5], "b": [0.9, 0.1]}, arches))
    assert summary["normalised_entropy"] == pytest.approx((math.log(2) + brute_entropy([0.9, 0.1]))
                                                          / (2 * math.log(2)))
    assert summary["mean_max_probability"] == pytest.approx(0.7)
    assert summary["argmax_changes_last_epoch"] == 0
    assert summary["last_argmax_change_epoch"] == 2
    assert summary["arch_steps"] == 30
    # the rows' own keys win over recomputation
    rows = rows_with({"a": [0.5, 0.5]}, arches[:1])
    rows[0].update(normalised_entropy=0.25, mean_max_prob=0.6, argmax_changes=3)
    summary = convergence_summary(rows)
    assert (summary["normalised_entropy"], summary["mean_max_probability"]) == (0.25, 0.6)
    assert summary["argmax_changes_last_epoch"] == 3 and summary["last_argmax_change_epoch"] == 1
    with pytest.raises(ProxylessError, match="no metrics rows"):
        convergence_summary([])


def test_warning_above_the_threshold_only_and_names_the_config_keys():
    knobs = {"epochs": 6, "update_every": 5, "arch_lr": 1e-3}
    assert ENTROPY_WARNING_THRESHOLD == 0.8
    assert convergence_warning({"normalised_entropy": 0.79, "arch_steps": 40}, **knobs) is None
    assert convergence_warning({"normalised_entropy": 0.8}, **knobs) is None
    text = convergence_warning({"normalised_entropy": 0.93, "arch_steps": 40}, **knobs)
    assert text is not None and text.startswith("warning: ")
    assert "barely moved" in text and "random sample inside the latency band" in text
    for fix in ("search.epochs=12", "arch.update_every=1", "arch.lr=0.01", "40 x 0.001"):
        assert fix in text, fix
    # update_every=1 already: not suggested again; penalty mode has no band
    text = convergence_warning({"normalised_entropy": 0.9}, epochs=2, update_every=1, arch_lr=0.01,
                               latency_mode="penalty")
    assert "arch.update_every" not in text and "latency band" not in text and "arch.lr=0.1" in text
    # the steps could have moved the logits (12 x 0.3 = 3.6 > 2) but cancelled: no larger lr
    text = convergence_warning({"normalised_entropy": 0.97, "arch_steps": 12}, epochs=3, update_every=1,
                               arch_lr=0.3, warmup_epochs=1)
    assert "mostly cancelled" in text and "search.warmup_epochs=2 (now 1)" in text
    assert "search.epochs=6" in text and "data.valid_batch_size" in text and "arch.lr=3" not in text


def test_collapse_warning_at_half_the_decisions_on_parameter_free_ops():
    chain = {"s1.b0": "mb_k3_e3", "s1.b1": "zero", "s2.b0": "zero", "s2.b1": "mb_k5_e3"}
    text = collapse_warning(chain, CHAIN_PARAMETER_FREE_OPS)
    assert text is not None and "2 of 4 decisions" in text and "zero x2" in text
    assert "search.warmup_epochs" in text
    assert collapse_warning({**chain, "s2.b0": "mb_k3_e1"}, CHAIN_PARAMETER_FREE_OPS) is None
    cell = ["none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3"]
    assert "3 of 6" in collapse_warning(cell, NB201_PARAMETER_FREE_OPS)
    assert collapse_warning(cell[1:], NB201_PARAMETER_FREE_OPS) is None  # 2 of 5
    assert collapse_warning([], CHAIN_PARAMETER_FREE_OPS) is None


def test_format_summary_ends_with_the_warning():
    convergence = {"normalised_entropy": 0.95, "mean_max_probability": 0.3, "argmax_changes_last_epoch": 1,
                   "last_argmax_change_epoch": 3, "arch_steps": 8}
    convergence["warning"] = convergence_warning(convergence, epochs=2, update_every=1, arch_lr=1e-3)
    summary = {"unit": "MMACs", "choices": {"s1.b0": "mb_k3_e3"}, "measured_latency": None,
               "predicted_latency": 1.0, "target_latency_ms": None, "target_latency_table": 1.0,
               "latency_mode": "band",
               "cheapest_latency": 0.5, "most_expensive_latency": 2.0, "selection": "argmax",
               "test_accuracy": 0.5, "run_dir": "runs/x", "files": [], "convergence": convergence}
    lines = format_summary(summary).splitlines()
    assert lines[-2:] == convergence["warning"].splitlines()
    assert format_convergence(convergence) in lines
    convergence["warning"] = None
    assert format_summary(summary).splitlines()[-1].startswith("run directory")


def test_short_search_writes_the_convergence_fields_and_warns_last(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--dataset", "synthetic:120", "--space", "tiny", "--hardware", "flops", "--epochs", "2",
            "--warmup-epochs", "1", "--no-progress", "--out", str(out), "search.steps_per_epoch=3",
            "data.batch_size=16", "data.valid_batch_size=16", "data.valid_size=32", "data.eval_batch_size=64",
            "arch.update_every=1", "arch.skip_first_epoch=false", "run.threads=1", "run.eval_batches=1",
            "run.bn_recalibration_batches=1", "run.plots=false"]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        probs = list(row["probs"].values())
        assert row["normalised_entropy"] == pytest.approx(normalised_entropy(probs), abs=1e-5)
        assert row["mean_max_prob"] == pytest.approx(mean_max_probability(probs), abs=1e-5)
        assert 0.0 <= row["normalised_entropy"] <= 1.0 and "entropy" in row
    assert rows[0]["argmax_changes"] == 0
    for before, row in zip(rows, rows[1:]):
        assert row["argmax_changes"] == argmax_changes(before["arch"], row["arch"])
    assert any("argmax changes" in line and line.startswith("epoch 3") for line in printed)
    summary = json.loads((out / "summary.json").read_text())
    convergence = summary["convergence"]
    assert convergence["normalised_entropy"] == pytest.approx(rows[-1]["normalised_entropy"])
    assert convergence["argmax_changes_last_epoch"] == rows[-1]["argmax_changes"]
    assert convergence["arch_steps"] == 6
    # 6 architecture steps at arch.lr 1e-3 leave p uniform: the warning, as the last printed lines
    assert convergence["normalised_entropy"] > 0.99
    warning = convergence["warning"].splitlines()
    assert printed[-len(warning):] == warning and "search.epochs=4" in warning[-1]
    assert any(line.startswith("convergence: normalised entropy") for line in printed)
