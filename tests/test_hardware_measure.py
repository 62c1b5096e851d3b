import json

import numpy as np
import pytest
import torch

from proxylessnas import get_space
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.build import build_lut
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.lut import LatencyTable
from proxylessnas.hardware.measure import (
    Backend,
    build_block,
    drop_outliers,
    export_onnx_bytes,
    key_input_shape,
)

FAST = {"seconds_per_key": 0.002, "min_samples": 4, "rounds": 2, "progress": False}


def test_build_measures_every_key_and_resumes(tmp_path):
    space = get_space("tiny")
    out = tmp_path / "lut.json"
    table = build_lut(space, Backend(), out, **FAST)
    keys = [str(k) for k in space_keys(space).unique()]
    assert sorted(table.entries) == sorted(keys)
    assert all(s.median > 0 and s.p10 <= s.median <= s.p90 for s in table.entries.values())
    saved = LatencyTable.load(out)
    for field in ("device", "backend", "backend_version", "dtype", "batch_size", "threads", "torch_version",
                  "date", "clock"):
        assert field in saved.provenance
    assert saved.provenance["complete"] is True
    # drop two entries: the resumed build measures only those and keeps the rest as they were
    data = json.loads(out.read_text())
    removed = keys[:2]
    for key in removed:
        del data["entries"][key]
    data["provenance"]["complete"] = False
    out.write_text(json.dumps(data))
    resumed = build_lut(space, Backend(), out, **FAST)
    assert sorted(resumed.entries) == sorted(keys)
    for key in keys[2:]:
        assert resumed.entries[key] == table.entries[key]


def test_build_refuses_a_table_for_another_target(tmp_path):
    out = tmp_path / "lut.json"
    build_lut(get_space("tiny"), Backend(), out, **FAST)
    before = out.read_bytes()
    with pytest.raises(ProxylessError, match="cannot be resumed"):
        build_lut(get_space("tiny", resolution=8), Backend(), out, **FAST)
    with pytest.raises(ProxylessError, match="batch 2"):
        build_lut(get_space("tiny"), Backend(batch_size=2), out, **FAST)
    assert out.read_bytes() == before


def test_onnx_block_matches_torch():
    ort = pytest.importorskip("onnxruntime")
    key = space_keys(get_space("tiny")).searched[1][1]
    module = build_block(key)
    x = torch.randn(*key_input_shape(key, 2))
    session = ort.InferenceSession(export_onnx_bytes(module, x), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, module(x).numpy(), rtol=1e-4, atol=1e-5)


def test_block_output_shape_follows_the_key():
    for key in space_keys(get_space("tiny")).unique():
        with torch.no_grad():
            y = build_block(key)(torch.zeros(*key_input_shape(key, 1)))
        h, w, c = key.output
        assert tuple(y.shape) == ((1, c) if key.kind == "classifier" else (1, c, h, w))


def test_bad_backends():
    with pytest.raises(ProxylessError, match="unknown backend"):
        Backend("tensorrt")
    with pytest.raises(ProxylessError):
        Backend("onnxruntime", "cuda")
    with pytest.raises(ProxylessError):
        Backend(threads=0)


def test_drop_outliers_keeps_the_bulk():
    values = [1.0] * 20 + [1.1] * 20 + [50.0]
    kept = drop_outliers(values)
    assert 50.0 not in kept and len(kept) == 40
