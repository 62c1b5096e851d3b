"""Few-shot transfer of a latency table to a new setting (``proxyless latency adapt``, issue 19):
the fit recovers a known transfer exactly in float64, falls back to the pure rescaling with too
few networks, never prices a block below zero, and the adapted table prices every network as
``alpha old + beta MMACs + kappa DW + mu DW_L + delta layers + gamma`` through the ordinary
cost-model interface, with the lane count L that the measurements call for."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from proxylessnas import get_space
from proxylessnas.cli import main
from proxylessnas.hardware.adapt import LANES, adapt, fit_transfer, key_feature_matrix, network_features
from proxylessnas.hardware.flops import key_depthwise_convs
from proxylessnas.hardware.keys import arch_keys, space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.measure import Backend
from proxylessnas.hardware.targets import load_table, table_model
from proxylessnas.hardware.validate import sample_archs

TRUE = (0.4, 0.002, 0.2, 1.0, 0.003, 0.05)
"""alpha, beta (ms/MMAC), kappa (ms/depthwise MMAC), mu (ms/depthwise MMAC at channels not a
multiple of TRUE_LANES), delta (ms/layer), gamma (ms)."""
TRUE_LANES = 16
WEIGHTS = ("alpha", "beta_per_mmac", "kappa_per_depthwise_mmac", "mu_per_unaligned_depthwise_mmac",
           "delta_per_layer", "gamma")
"""The fit's names for TRUE's entries."""


def mixed_space():
    """The tiny space with depthwise convolutions over 8, 16, 24 and 48 channels: two of them a
    multiple of 16, none of 32, all of 8."""
    return get_space("tiny", stage_widths=(8, 16))


def source_table(space, with_predictor: bool = False) -> LatencyTable:
    """A complete table of random costs (torch, here's provenance), optionally with a predictor."""
    rng = random.Random(3)
    keys = space_keys(space).unique()
    entries = {str(k): LatencyStats.from_samples([rng.uniform(0.05, 0.5)]) for k in keys}
    table = LatencyTable(TableTarget.of(space), Backend("torch").provenance(), entries)
    if with_predictor:
        from proxylessnas.hardware.predictor import fit_predictor

        archs = sample_archs(space, 12, seed=5)
        keys_of = [arch_keys(space, a) for a in archs]
        measured = [1.1 * sum(table.lookup(k) for k in ks) + 0.02 * len(ks) for ks in keys_of]
        table.predictor = fit_predictor(table, keys_of, measured).to_dict()
    return table


def true_new(model, space, arch) -> float:
    return float(np.dot(network_features(model, space, arch, TRUE_LANES), TRUE))


@pytest.mark.parametrize("with_predictor", [False, True])
def test_the_fit_recovers_a_known_transfer_and_the_table_prices_it_per_key(with_predictor):
    space = mixed_space()
    source = source_table(space, with_predictor)
    old = table_model(source)
    archs = sample_archs(space, 10, seed=11)
    measured = [true_new(old, space, a) for a in archs]
    table = adapt(source, old, space, archs, measured, 1, {"backend": "test"})
    fit = table.predictor["fit"]
    assert fit["train_mape"] < 0.5 and fit["leave_one_out_mape"] < 1.0
    assert fit["lanes"] == TRUE_LANES  # 8 sees no unaligned channels, 32 sees every channel unaligned
    assert fit["alpha"] == pytest.approx(TRUE[0], rel=0.05)
    new = table_model(table)
    weights = [fit[name] for name in WEIGHTS]
    for arch in sample_archs(space, 20, seed=99):  # unseen networks, priced key by key
        assert new.arch_cost(space, arch) == pytest.approx(
            float(np.dot(network_features(old, space, arch, fit["lanes"]), weights)), rel=1e-9)
        assert new.arch_cost(space, arch) == pytest.approx(true_new(old, space, arch), rel=0.01)


def test_depthwise_convs_of_a_key_are_counted_from_the_built_block():
    """An MBConv key k x k, expand e, C_in -> C_out at stride s has one depthwise conv over
    e * C_in channels: k^2 * e C_in * H_out * W_out MACs; the stem has none."""
    space = mixed_space()
    keys = space_keys(space).unique()
    for key in keys:
        convs = key_depthwise_convs(key)
        if key.kind != "mbconv":
            assert convs == ()
            continue
        (_, _, ic), (oh, ow, _) = key.input, key.output
        mid = ic * key.expand_ratio
        assert convs == ((mid, key.kernel_size ** 2 * mid * oh * ow),)
    assert {c for k in keys for c, _ in key_depthwise_convs(k)} == {8, 16, 24, 48}


def test_two_networks_give_the_pure_rescaling():
    space = get_space("tiny")
    source = source_table(space)
    old = table_model(source)
    archs = sample_archs(space, 2, seed=1)
    table = adapt(source, old, space, archs, [0.5 * old.arch_cost(space, a) for a in archs], 1, {})
    fit = table.predictor["fit"]
    assert fit["pure_rescaling"] and fit["leave_one_out_mape"] is None
    assert [fit[name] for name in WEIGHTS] == pytest.approx([0.5, 0.0, 0.0, 0.0, 0.0, 0.0], abs=1e-12)


def test_no_fit_prices_a_block_below_zero():
    """Measurements that a large negative per-layer term would fit best: the chosen fit still
    prices every block of the space at >= 0."""
    space = get_space("tiny")
    source = source_table(space)
    old = table_model(source)
    archs = sample_archs(space, 10, seed=4)
    x = {lanes: np.stack([network_features(old, space, a, lanes) for a in archs]) for lanes in LANES}
    y = 2.0 * x[16][:, 0] - 0.3 * x[16][:, 4] + 5.0
    keys = {lanes: key_feature_matrix(old, space, lanes) for lanes in LANES}
    transfer = fit_transfer(x, y, keys)
    weights = np.array([transfer.alpha, transfer.beta, transfer.kappa, transfer.mu, transfer.delta])
    assert np.all(keys[transfer.lanes] @ weights >= 0)


def test_a_block_the_source_prices_below_zero_does_not_rule_out_the_fit():
    """A source predictor may price a block below zero (its per-stage corrections outweigh a cheap
    block's table time). Requiring the fit to price that block at >= 0 left only the pure
    rescaling; the fit now keeps blocks the source prices at >= 0 non-negative, and recovers the
    known transfer."""
    space = mixed_space()
    old = table_model(source_table(space))
    archs = sample_archs(space, 10, seed=11)
    x = {lanes: np.stack([network_features(old, space, a, lanes) for a in archs]) for lanes in LANES}
    y = x[TRUE_LANES] @ np.array(TRUE)
    keys = {lanes: key_feature_matrix(old, space, lanes) for lanes in LANES}
    for matrix in keys.values():
        matrix[0, 0] = -5.0  # the source prices this block at -5 ms
    transfer = fit_transfer(x, y, keys)
    weights = np.array([transfer.alpha, transfer.beta, transfer.kappa, transfer.mu, transfer.delta])
    assert not transfer.fit["pure_rescaling"] and transfer.lanes == TRUE_LANES
    assert transfer.alpha == pytest.approx(TRUE[0], rel=0.05)
    priced = keys[transfer.lanes] @ weights
    assert priced[0] < 0 and np.all(priced[1:] >= 0)


def test_the_pure_rescaling_is_the_float64_least_squares_of_relative_errors():
    x = np.array([[1.0, 0, 0, 1], [2.0, 0, 0, 1], [4.0, 0, 0, 1]])
    y = np.array([0.5, 1.1, 1.9])
    from proxylessnas.hardware.adapt import pure_scale

    s = pure_scale(x, y)[0]
    grid = np.linspace(0.3, 0.7, 40001)
    losses = [np.sum((1 - g * x[:, 0] / y) ** 2) for g in grid]
    assert s == pytest.approx(grid[int(np.argmin(losses))], abs=2e-5)


def rows_file(tmp_path, space, old, count=8):
    archs = sample_archs(space, count, seed=21)
    rows = [{"choices": a.to_dict()["choices"], "measured": true_new(old, space, a)} for a in archs]
    path = tmp_path / "device.json"
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_cli_adapts_from_networks_measured_on_a_device(tmp_path, capsys):
    space = get_space("tiny")
    source = source_table(space)
    source.save(tmp_path / "src.json")
    rows = rows_file(tmp_path, space, table_model(source))
    out = tmp_path / "phone.json"
    code = main(["latency", "adapt", "--from", str(tmp_path / "src.json"), "--measured", str(rows),
                 "--device-name", "phone", "--out", str(out), "--json", str(tmp_path / "r.json")])
    assert code == 0
    assert "adapted from 8 measured networks" in capsys.readouterr().out
    table = load_table(out)
    assert table.provenance["device"] == "phone" and table.provenance["adapted_from"]["backend"] == "torch"
    assert set(table.entries) == {str(k) for k in space_keys(space).unique()}
    arch = sample_archs(space, 1, seed=123)[0]
    assert table_model(table).arch_cost(space, arch) == pytest.approx(
        true_new(table_model(source), space, arch), rel=0.01)


def test_cli_adapt_measures_here_and_validates_in_one_session(tmp_path, capsys):
    space = get_space("tiny")
    source = source_table(space)
    source.save(tmp_path / "src.json")
    code = main(["latency", "adapt", "--from", str(tmp_path / "src.json"), "--backend", "torch",
                 "--measure", "3", "--validate", "3", "--out", str(tmp_path / "t.json"),
                 "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "source   on 3 unseen networks" in out and "adapted  on 3 unseen networks" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["measured"]) == 3 and len(report["rows"]) == 3
    assert report["validation"]["n"] == 3 and np.isfinite(report["validation"]["adapted"]["mape"])
    assert load_table(tmp_path / "t.json").provenance["backend"] == "torch"


def adapt_from_file(tmp_path) -> int:
    return main(["latency", "adapt", "--from", str(tmp_path / "src.json"), "--measured",
                 str(tmp_path / "m.json"), "--out", str(tmp_path / "t.json")])


@pytest.mark.parametrize("rows, message", [
    ([], "no measured networks"),
    ([{"choices": {}}], "row 0 has no choices and measured latency"),
    ([{"choices": {}, "measured": 1.0}], "row 0"),
])
def test_cli_adapt_refuses_bad_measurements_in_one_line(tmp_path, capsys, rows, message):
    space = get_space("tiny")
    source_table(space).save(tmp_path / "src.json")
    (tmp_path / "m.json").write_text(json.dumps(rows))
    code = adapt_from_file(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "t.json").exists()


def test_cli_adapt_refuses_a_negative_latency(tmp_path, capsys):
    space = get_space("tiny")
    source = source_table(space)
    source.save(tmp_path / "src.json")
    arch = sample_archs(space, 1)[0]
    (tmp_path / "m.json").write_text(json.dumps([{"choices": arch.to_dict()["choices"], "measured": -1}]))
    code = adapt_from_file(tmp_path)
    assert code == 2 and "not a positive number of ms" in capsys.readouterr().err


def test_cli_adapt_never_writes_over_its_inputs_or_an_existing_file(tmp_path, capsys):
    space = get_space("tiny")
    source_table(space).save(tmp_path / "src.json")
    rows = rows_file(tmp_path, space, table_model(load_table(tmp_path / "src.json")))
    before = (tmp_path / "src.json").read_bytes()
    base = ["latency", "adapt", "--from", str(tmp_path / "src.json"), "--measured", str(rows)]
    assert main([*base, "--out", str(tmp_path / "src.json"), "--overwrite"]) == 2
    assert "--out is one of this command's inputs" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "t.json"), "--json", str(rows)]) == 2
    assert "--json is one of this command's inputs" in capsys.readouterr().err
    assert (tmp_path / "src.json").read_bytes() == before and not (tmp_path / "t.json").exists()
    (tmp_path / "t.json").write_text("{}")
    assert main([*base, "--out", str(tmp_path / "t.json")]) == 2
    assert "the table file exists" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "t.json"), "--overwrite"]) == 0
    assert load_table(tmp_path / "t.json").provenance["adapted_from"]["table"] == str(tmp_path / "src.json")
