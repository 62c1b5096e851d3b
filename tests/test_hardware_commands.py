import csv
import json
from pathlib import Path

import pytest

from proxylessnas import Arch, get_space
from proxylessnas.cli import main
from proxylessnas.hardware.build import build_lut
from proxylessnas.hardware.lut import LatencyTable
from proxylessnas.hardware.measure import Backend

YAML = Path(__file__).resolve().parents[2] / "shared" / "reference" / "official" / "mobile_trim.yaml"
FAST = {"seconds_per_key": 0.002, "min_samples": 4, "rounds": 2, "progress": False}


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_predict_flops_for_a_zoo_model(capsys):
    code, out, _ = run(["latency", "predict", "mobilenet_v2", "--hardware", "flops"], capsys)
    assert code == 0 and "300.77" in out


@pytest.mark.skipif(not YAML.is_file(), reason="reference table not available")
def test_import_yaml_then_predict_paper_arch(tmp_path, capsys):
    out = tmp_path / "phone.json"
    assert run(["latency", "import", str(YAML), "--out", str(out)], capsys)[0] == 0
    space = get_space("proxyless-imagenet")
    arch_path = tmp_path / "arch.json"
    Arch.from_ops(space, ["mb_k3_e3"] * 21).save(arch_path)
    code, text, _ = run(["latency", "predict", str(arch_path), "--hardware", str(out)], capsys)
    assert code == 0 and "76.0481 ms" in text
    code, _, err = run(["latency", "predict", "proxyless_mobile", "--hardware", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and "3 key(s)" in err and "Traceback" not in err


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    corrupt = tmp_path / "bad.json"
    corrupt.write_text("{")
    cases = [
        ["latency", "predict", "proxyless_cpu", "--hardware", str(corrupt)],
        ["latency", "predict", "proxyless_cpu", "--hardware", "tpu"],
        ["latency", "measure", "proxyless_cpu", "--backend", "tensorrt"],
        ["latency", "build", "--space", "tiny", "--backend", "tvm", "--out", str(tmp_path / "x.json")],
        ["latency", "import", str(tmp_path / "missing.csv"), "--manifest", "m.json", "--out", str(corrupt)],
    ]
    for argv in cases:
        code, _, err = run(argv, capsys)
        assert code == 2, argv
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert corrupt.read_text() == "{"


def test_export_ops_then_import_csv(tmp_path, capsys):
    assert run(["latency", "export-ops", "--space", "tiny", "--out", str(tmp_path / "ops")], capsys)[0] == 0
    manifest = json.loads((tmp_path / "ops" / "manifest.json").read_text())
    assert all((tmp_path / "ops" / op["file"]).is_file() for op in manifest["ops"])
    rows = [(op["key"], 0.1 * (i + 1)) for i, op in enumerate(manifest["ops"])]
    timings = tmp_path / "t.csv"
    with timings.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "ms"])
        for key, ms in rows:
            writer.writerows([[key, ms], [key, ms * 3], [key, ms * 2]])
    out = tmp_path / "device.json"
    argv = ["latency", "import", str(timings), "--manifest", str(tmp_path / "ops" / "manifest.json"),
            "--out", str(out)]
    assert run(argv, capsys)[0] == 0
    table = LatencyTable.load(out)
    assert table.entries[rows[1][0]].median == pytest.approx(0.4)
    # a measurement file missing one key: refused, nothing written
    partial = tmp_path / "p.csv"
    partial.write_text("key,ms\n" + "".join(f"{k},{ms}\n" for k, ms in rows[1:]))
    out2 = tmp_path / "device2.json"
    code, _, err = run(argv[:2] + [str(partial)] + argv[3:-1] + [str(out2)], capsys)
    assert code == 2 and "lacks 1 key(s)" in err and not out2.exists()


def test_validate_and_measure_on_a_tiny_table(tmp_path, capsys):
    space = get_space("tiny")
    table_path = tmp_path / "tiny.json"
    build_lut(space, Backend(), table_path, **FAST)
    report = tmp_path / "report.json"
    plot = tmp_path / "scatter.png"
    code, out, _ = run(["latency", "validate", "--hardware", str(table_path), "--samples", "4", "--fit", "5",
                        "--json", str(report), "--plot", str(plot), "--no-progress"], capsys)
    assert code == 0, out
    data = json.loads(report.read_text())
    assert data["n"] == 4
    for name in ("lut", "predictor"):
        assert set(data[name]) >= {"mape", "within_5", "within_10", "kendall_tau", "mae", "rmse"}
    assert "device" in data["provenance"] and plot.stat().st_size > 0
    assert LatencyTable.load(table_path).predictor is not None
    assert data["speed_gauge"]["nets"] == 3 and data["speed_gauge"]["chunks"] == 1 and "speed gauge" in out
    code, out, _ = run(["latency", "validate", "--hardware", str(table_path), "--samples", "2",
                        "--gauge", "0", "--json", str(report), "--no-progress"], capsys)
    assert code == 0 and json.loads(report.read_text())["speed_gauge"] is None
    code, out, err = run(["latency", "validate", "--hardware", str(table_path), "--gauge", "-1"], capsys)
    assert code == 2 and "--gauge" in err
    arch = tmp_path / "arch.json"
    Arch.from_ops(space, [l.candidates[0] for l in space.searched_layers]).save(arch)
    code, out, _ = run(["latency", "measure", str(arch), "--rounds", "2", "--repeats", "2"], capsys)
    assert code == 0 and "median" in out


def test_build_takes_space_overrides_anywhere(tmp_path, capsys):
    out = tmp_path / "t.json"
    argv = ["latency", "build", "--space", "tiny", "head_width=24", "--out", str(out),
            "--seconds-per-key", "0.002", "--no-progress", "depths=[1,1]"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    table = LatencyTable.load(out)
    assert table.target.space_overrides == {"head_width": 24, "depths": [1, 1]}
    table.check_target(get_space("tiny", head_width=24, depths=[1, 1]))
    bad = ["latency", "build", "--space", "tiny", "width=0.5", "--out", str(tmp_path / "u.json")]
    code, _, err = run(bad, capsys)
    assert code == 2 and "unknown override" in err and err.count("\n") == 1
