import json

import numpy as np
import pytest

from proxylessnas import get_space
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.keys import space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget


def make_table(space):
    entries = {str(k): LatencyStats.from_samples([0.5 + i * 0.01, 0.6, 0.55])
               for i, k in enumerate(space_keys(space).unique())}
    return LatencyTable(TableTarget.of(space), {"device": "test cpu", "backend": "torch"}, entries)


def test_stats_match_numpy():
    rng = np.random.default_rng(0)
    samples = rng.gamma(2.0, 1.0, size=101).tolist()
    s = LatencyStats.from_samples(samples)
    assert s.median == pytest.approx(np.median(samples))
    assert s.p10 == pytest.approx(np.percentile(samples, 10))
    assert s.p90 == pytest.approx(np.percentile(samples, 90))
    assert s.mean == pytest.approx(np.mean(samples))
    assert s.std == pytest.approx(np.std(samples))
    assert s.count == 101


def test_save_load_round_trip(tmp_path):
    space = get_space("tiny")
    table = make_table(space)
    path = table.save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["unit"] == "ms"
    assert set(next(iter(data["entries"].values()))) == {"median", "mean", "std", "p10", "p90", "count"}
    loaded = LatencyTable.load(path)
    assert loaded.entries == table.entries
    assert loaded.target == table.target and loaded.provenance == table.provenance


def test_strict_lookup_lists_missing_keys():
    space = get_space("tiny")
    table = make_table(space)
    other = space_keys(get_space("tiny", resolution=32)).unique()
    with pytest.raises(ProxylessError) as err:
        table.lookup(other[0])
    assert str(other[0]) in err.value.what


@pytest.mark.parametrize("content", ["{not json", '{"kind": "other"}', "[]",
                                     '{"kind": "proxylessnas.latency_table", "schema_version": 1}',
                                     '{"kind": "proxylessnas.latency_table", "schema_version": 9}'])
def test_corrupt_files_raise(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ProxylessError):
        LatencyTable.load(path)


def test_negative_entry_is_refused(tmp_path):
    space = get_space("tiny")
    data = make_table(space).to_dict()
    first = next(iter(data["entries"]))
    data["entries"][first]["median"] = -1.0
    path = tmp_path / "neg.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProxylessError, match="malformed"):
        LatencyTable.load(path)
