import itertools
import math
import statistics

import pytest

from proxylessnas import get_space
from proxylessnas.hardware.validate import accuracy_metrics, kendall_tau, sample_archs


def test_kendall_tau_against_brute_force_without_ties():
    x = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0]
    y = [2.0, 1.0, 3.0, 5.0, 4.0, 8.0, 0.5, 7.0]
    pairs = list(itertools.combinations(range(len(x)), 2))
    sign = sum(math.copysign(1, (x[i] - x[j]) * (y[i] - y[j])) for i, j in pairs)
    assert kendall_tau(x, y) == pytest.approx(sign / len(pairs))
    assert kendall_tau(x, x) == 1.0 and kendall_tau(x, [-v for v in x]) == -1.0


def test_kendall_tau_b_with_ties():
    # scipy.stats.kendalltau([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9128709291752769 (tau-b)
    assert kendall_tau([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9128709291752769)


def test_accuracy_metrics_by_hand():
    m = accuracy_metrics([1.04, 2.18, 2.73, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert m["mae"] == pytest.approx((0.04 + 0.18 + 0.27 + 0.0) / 4)
    assert m["mape"] == pytest.approx(100 * (0.04 + 0.09 + 0.09 + 0.0) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0.04**2 + 0.18**2 + 0.27**2) / 4))
    assert m["within_5"] == 0.5 and m["within_10"] == 1.0


def test_sampled_archs_are_valid_and_reproducible():
    space = get_space("tiny")
    a, b = sample_archs(space, 6, seed=3), sample_archs(space, 6, seed=3)
    assert [x.choices for x in a] == [x.choices for x in b]
    assert len({tuple(x.indices(space)) for x in a}) > 1


def test_fit_and_validate_measures_both_sets_in_one_shuffled_session(monkeypatch):
    """Each arch gets its own measurement back after the shuffle; only the fit set is fitted on."""
    from proxylessnas.hardware import validate
    from proxylessnas.hardware.keys import arch_keys
    from proxylessnas.hardware.lut import LatencyStats
    from proxylessnas.hardware.measure import Backend
    from test_hardware_cost import synthetic_table
    from test_hardware_predictor import truth

    space = get_space("tiny")
    table = synthetic_table(space, seed=4)
    sessions = []

    def fake_measure(space_, archs, backend, **kwargs):
        sessions.append([tuple(a.indices(space_)) for a in archs])
        return [LatencyStats.from_samples([truth(table, arch_keys(space_, a))] * 3) for a in archs]

    monkeypatch.setattr(validate, "measure_networks", fake_measure)
    report, rows = validate.fit_and_validate(space, table, Backend(), fit=60, samples=20, seed=5, fit_seed=9)
    fit_archs, test_archs = sample_archs(space, 60, 9), sample_archs(space, 20, 5)
    expected = [tuple(a.indices(space)) for a in fit_archs + test_archs]
    assert len(sessions) == 1 and sorted(sessions[0]) == sorted(expected) and sessions[0] != expected
    truths = [truth(table, arch_keys(space, a)) for a in test_archs]
    assert [r["measured"] for r in rows] == pytest.approx(truths)
    assert report["n"] == 20 and table.predictor["fit"]["n"] == 60 and table.predictor["fit"]["seed"] == 9
    # the fake device is linear in the predictor's features: MAPE (in %) near 0, the table sum off
    assert report["predictor"]["mape"] < 0.5 and report["lut"]["mape"] > 5 * report["predictor"]["mape"]


def test_speed_gauge_removes_the_speed_change_between_chunks(monkeypatch):
    """A fake machine whose speed changes from chunk to chunk (and from pass to pass): with the gauge
    every net comes back on the first pass's scale; without it the chunks disagree."""
    import random

    from proxylessnas.hardware import validate
    from proxylessnas.hardware.cost import TableCostModel
    from proxylessnas.hardware.lut import LatencyStats
    from proxylessnas.hardware.measure import Backend
    from test_hardware_cost import synthetic_table

    space = get_space("tiny")
    model = TableCostModel(synthetic_table(space, seed=4))
    speeds = random.Random(3)
    chunk_speeds = []

    def fake_measure(runners, **kwargs):
        speed = speeds.uniform(0.85, 1.15)  # one speed per chunk: its nets are interleaved
        chunk_speeds.append(speed)
        return [LatencyStats.from_samples([speed * model.arch_cost(space, arch)] * 3) for arch in runners]

    monkeypatch.setattr(validate, "build_net", lambda space_, arch: arch)
    prepared = []
    monkeypatch.setattr(validate, "prepare_runner", lambda arch, *a, **k: prepared.append(arch) or arch)
    monkeypatch.setattr(validate, "measure_interleaved", fake_measure)
    archs = sample_archs(space, 40, seed=1)
    truths = [model.arch_cost(space, a) for a in archs]
    raw = validate.measure_networks(space, archs, Backend(), per_round=3, chunk_size=8)
    ratios = [s.median / t for s, t in zip(raw, truths)]
    assert max(ratios) / min(ratios) > 1.05  # without the gauge the chunks disagree

    gauge = validate.SpeedGauge.for_space(space, count=2, seed=11)
    chunk_speeds.clear()
    prepared.clear()
    first = validate.measure_networks(space, archs, Backend(), per_round=3, chunk_size=8, gauge=gauge)
    assert len(prepared) == 40 + 2  # the gauge nets are prepared once, not in each of the 5 chunks
    scale = statistics.median(chunk_speeds)  # the reference is the gauge's median chunk
    assert [s.median for s in first] == pytest.approx([scale * t for t in truths], rel=1e-9)
    assert gauge.factors == pytest.approx([c / scale for c in chunk_speeds], rel=1e-9)
    # a second pass at other speeds keeps the first pass's scale
    second = validate.measure_networks(space, archs[:12], Backend(), per_round=3, chunk_size=8, gauge=gauge)
    assert [s.median for s in second] == pytest.approx([s.median for s in first[:12]], rel=1e-9)
    assert gauge.summary()["chunks"] == 5 + 2 and gauge.summary()["nets"] == 2
    assert len({tuple(a.indices(space)) for a in gauge.archs}) == 2


def test_latency_stats_scaled():
    from proxylessnas.hardware.lut import LatencyStats

    stats = LatencyStats.from_samples([1.0, 2.0, 3.0, 4.0])
    half = stats.scaled(0.5)
    assert (half.median, half.mean, half.std, half.p10, half.p90, half.count) == pytest.approx(
        (stats.median / 2, stats.mean / 2, stats.std / 2, stats.p10 / 2, stats.p90 / 2, 4))


def test_runner_cache_converts_each_net_once(monkeypatch):
    """With a RunnerCache, a second pass and another session time the programs converted first
    (gauge nets included); the timings are real ones of those programs."""
    from proxylessnas.hardware import validate
    from proxylessnas.hardware.measure import Backend

    space = get_space("tiny")
    real_prepare = validate.prepare_runner
    prepared = []
    monkeypatch.setattr(validate, "prepare_runner",
                        lambda module, *a, **k: prepared.append(module) or real_prepare(module, *a, **k))
    archs = sample_archs(space, 5, seed=2)
    gauge = validate.SpeedGauge.for_space(space, count=2, seed=11)
    cache = validate.RunnerCache()
    first = validate.measure_networks(space, archs, Backend(), rounds=2, per_round=3, chunk_size=2,
                                      gauge=gauge, cache=cache)
    assert len(prepared) == cache.prepared == 5 + 2
    again = validate.measure_networks(space, archs[::-1] + archs[:1], Backend(), rounds=2, per_round=3,
                                      chunk_size=4, gauge=gauge, cache=cache)
    assert len(prepared) == 7 and len(again) == 6
    assert all(s.median > 0 for s in first + again)
    # without a cache every pass converts its nets again
    validate.measure_networks(space, archs[:2], Backend(), rounds=2, per_round=3, gauge=gauge)
    assert len(prepared) == 7 + 2 + 2


def test_program_pool_converts_in_worker_processes(monkeypatch):
    """With a ProgramPool, a serialised runtime's nets are converted in the workers: the main
    process converts none itself (prepare_runner is never called), only loads and times the
    programs; a cache still keeps each net once. A torch backend, with no program to send, is
    prepared in the main process as before."""
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    from proxylessnas.hardware import validate
    from proxylessnas.hardware.measure import Backend, compile_net, runner_from_program
    from proxylessnas.nets.net import build_net

    space = get_space("tiny")
    archs = sample_archs(space, 3, seed=4)
    real_prepare = validate.prepare_runner
    prepared = []
    monkeypatch.setattr(validate, "prepare_runner",
                        lambda module, *a, **k: prepared.append(module) or real_prepare(module, *a, **k))
    backend = Backend("onnxruntime")
    cache = validate.RunnerCache()
    with validate.ProgramPool(1) as pool:
        stats = validate.measure_networks(space, archs, backend, rounds=2, per_round=3, chunk_size=2,
                                          cache=cache, pool=pool)
        assert prepared == [] and cache.prepared == 3 and all(s.median > 0 for s in stats)
        validate.measure_networks(space, archs[:1], Backend("torch"), rounds=2, per_round=3, pool=pool)
        assert len(prepared) == 1
    # a program made in this process loads and times too
    shape = (1, space.in_chs, space.resolution, space.resolution)
    program = compile_net(build_net(space, archs[0]), shape, backend, seed=3)
    assert isinstance(program, bytes) and runner_from_program(program, shape, backend, seed=3).time_once() > 0


def test_an_error_in_a_worker_comes_back_as_the_same_one_line_error():
    """A ProxylessError raised while converting in a ProgramPool worker crosses back pickled: its
    one line (what, where, fix) must survive the trip unchanged."""
    import pickle

    from proxylessnas.errors import ProxylessError

    error = ProxylessError("backend 'x' is not installed", "backend", "pip install -e \".[x]\"")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ProxylessError and again.line() == error.line() == str(again)
    assert (again.what, again.where, again.fix) == (error.what, error.where, error.fix)
