"""A table's identity (issue 19): runtime version, CPU model, precision, batch size and threads are
recorded, and a table measured with others than the targeted ones is refused in one line, or used
with a one-line warning under ``--allow-mismatch``."""

from __future__ import annotations

import re

import pytest

from proxylessnas import Arch, get_space
from proxylessnas.cli import main
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.build import build_lut
from proxylessnas.hardware.identity import check_identity, differences
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.measure import Backend
from proxylessnas.hardware.targets import cached_table_path, get_cost_model, get_table
from proxylessnas.search.config import SearchConfig

FAST = {"seconds_per_key": 0.002, "min_samples": 4, "rounds": 2, "progress": False}


def table_for(space, backend: Backend, **changed) -> LatencyTable:
    """A complete table for ``space`` whose provenance is ``backend``'s here, with ``changed`` fields."""
    keys = space_keys(space).unique()
    entries = {str(k): LatencyStats.from_samples([0.1 + 0.01 * i]) for i, k in enumerate(keys)}
    provenance = {**backend.provenance(), **changed}
    return LatencyTable(TableTarget.of(space, batch_size=provenance["batch_size"]), provenance, entries)


def stderr_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROXYLESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def arch_file(tmp_path):
    space = get_space("tiny")
    path = tmp_path / "arch.json"
    Arch.from_ops(space, [layer.candidates[0] for layer in space.searched_layers]).save(path)
    return path


def test_the_provenance_records_the_whole_setting():
    provenance = Backend("torch", threads=2, batch_size=8).provenance()
    assert provenance["threads"] == 2 and provenance["batch_size"] == 8
    assert provenance["backend_version"] and provenance["device"] and provenance["dtype"] == "float32"
    here = Backend().provenance()
    assert differences(here, here) == []
    older = {**here, "backend_version": "0.1", "threads": 2}
    assert differences(older, here) == [f"runtime version 0.1, not {here['backend_version']}",
                                        "threads 2, not 1"]
    with pytest.raises(ProxylessError, match="--allow-mismatch"):
        check_identity(older, here, "t.json")
    with pytest.warns(UserWarning, match="runtime version 0.1"):
        assert len(check_identity(older, here, "t.json", allow_mismatch=True)) == 2


@pytest.mark.parametrize("field, value", [("backend_version", "0.0.1"), ("device", "Some Other CPU"),
                                          ("dtype", "int8")])
def test_a_cached_table_of_another_runtime_version_or_cpu_is_refused(cache, field, value):
    space = get_space("tiny")
    backend = Backend("torch")
    path = cached_table_path(space, backend)
    table_for(space, backend, **{field: value}).save(path)
    with pytest.raises(ProxylessError, match=re.escape(f"not {backend.provenance()[field]}")) as caught:
        get_cost_model("cpu", space)
    assert "--allow-mismatch" in caught.value.fix and "delete" in caught.value.fix
    with pytest.warns(UserWarning, match="latency table measured with"):
        model = get_cost_model("cpu", space, allow_mismatch=True)
    assert model.arch_cost(space, Arch.from_ops(space, [l.candidates[0] for l in space.searched_layers])) > 0


def stale_cached_table(space) -> None:
    backend = Backend("torch")
    table_for(space, backend, backend_version="0.0.1").save(cached_table_path(space, backend))


def test_predict_refuses_a_stale_cached_table_in_one_line_and_allows_it_with_a_flag(cache, arch_file, capsys):
    stale_cached_table(get_space("tiny"))
    assert main(["latency", "predict", str(arch_file), "--hardware", "cpu", "--no-progress"]) == 2
    err = stderr_lines(capsys)
    assert len(err) == 1 and "runtime version 0.0.1" in err[0] and "--allow-mismatch" in err[0], err
    assert main(["latency", "predict", str(arch_file), "--hardware", "cpu", "--allow-mismatch"]) == 0
    captured = capsys.readouterr()
    assert " ms on cpu" in captured.out
    assert [line for line in captured.err.splitlines() if line.startswith("warning: ")], captured.err


def test_a_table_file_of_other_threads_or_batch_is_refused_unless_allowed(tmp_path, arch_file, capsys):
    space = get_space("tiny")
    path = tmp_path / "t2.json"
    table_for(space, Backend("torch", threads=2, clock="wall")).save(path)
    assert get_table(str(path), space, batch_size=None, threads=None).provenance["threads"] == 2
    get_table(str(path), space, batch_size=1, threads=2)
    with pytest.raises(ProxylessError, match="threads 2, not 1"):
        get_table(str(path), space, batch_size=1, threads=1)
    with pytest.raises(ProxylessError, match="batch size 1, not 8"):
        get_table(str(path), space, batch_size=8, threads=2)
    base = ["latency", "predict", str(arch_file), "--hardware", str(path)]
    assert main(base) == 0  # no setting asked for: the table's own
    assert main([*base, "--threads", "2"]) == 0
    capsys.readouterr()
    assert main([*base, "--threads", "1"]) == 2
    assert "threads 2, not 1" in stderr_lines(capsys)[0]
    assert main([*base, "--batch-size", "8"]) == 2
    assert "batch size 1, not 8" in stderr_lines(capsys)[0]
    assert main([*base, "--batch-size", "8", "--threads", "1", "--allow-mismatch"]) == 0
    warning = [line for line in stderr_lines(capsys) if line.startswith("warning: ")]
    assert len(warning) == 1 and "batch size 1, not 8" in warning[0] and "threads 2, not 1" in warning[0]


def test_validate_refuses_a_table_measured_on_another_cpu_before_measuring(tmp_path, capsys):
    space = get_space("tiny")
    path = tmp_path / "elsewhere.json"
    build_lut(space, Backend("torch"), path, **FAST)
    table = LatencyTable.load(path)
    table.provenance["device"] = "Another CPU"
    table.save(path)
    argv = ["latency", "validate", "--hardware", str(path), "--samples", "2", "--gauge", "0", "--no-progress"]
    assert main(argv) == 2
    err = stderr_lines(capsys)
    assert len(err) == 1 and "device Another CPU, not" in err[0], err
    assert main([*argv, "--allow-mismatch"]) == 0
    assert "MAPE" in capsys.readouterr().out


def test_a_build_does_not_resume_a_table_of_another_runtime_version(tmp_path):
    space = get_space("tiny")
    path = tmp_path / "t.json"
    table = table_for(space, Backend("torch"), backend_version="0.0.1")
    del table.entries[next(iter(table.entries))]
    table.save(path)
    with pytest.raises(ProxylessError, match="backend_version is '0.0.1'"):
        build_lut(space, Backend("torch"), path, **FAST)


def test_search_takes_allow_mismatch_as_a_flag_and_a_config_field(cache, capsys):
    assert SearchConfig().with_overrides(["hardware.allow_mismatch=true"]).hardware.allow_mismatch is True
    stale_cached_table(get_space("tiny", num_classes=10, resolution=16, in_chs=3))  # synthetic's space
    argv = ["search", "--dataset", "synthetic:120", "--space", "tiny", "--hardware", "cpu", "--epochs", "1",
            "--warmup-epochs", "1", "--no-progress", "search.steps_per_epoch=2", "data.batch_size=16",
            "data.valid_batch_size=16", "data.valid_size=32", "data.eval_batch_size=64", "run.threads=1",
            "run.eval_batches=1", "run.bn_recalibration_batches=1", "latency.calibrate=0",
            "hardware.measure_runs=5", "hardware.seconds_per_net=0.02"]
    assert main([*argv, "--out", str(cache.parent / "refused")]) == 2
    err = stderr_lines(capsys)
    assert len(err) == 1 and "runtime version 0.0.1" in err[0] and "--allow-mismatch" in err[0], err
    assert main([*argv, "--out", str(cache.parent / "run"), "--allow-mismatch"]) == 0
    assert any(line.startswith("warning: ") and "0.0.1" in line for line in stderr_lines(capsys))
