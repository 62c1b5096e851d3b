"""The one metrics.jsonl reader and its writers (runtime.metrics), as search, training and plots use it."""

import pytest

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.metrics import append_metrics, keep_metrics, read_metrics, write_metrics


def test_optional_file_cut_back_to_finished_epochs(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_metrics(path, required=False) == []
    write_metrics(path, [])
    assert read_metrics(path, required=False) == []
    with pytest.raises(ProxylessError, match="empty"):
        read_metrics(path)
    for epoch in (1, 2, 3):
        append_metrics(path, {"epoch": epoch, "train_loss": 1.0 / epoch})
    assert [row["epoch"] for row in read_metrics(path, through_epoch=2)] == [1, 2]
    assert keep_metrics(path, 2) == read_metrics(path) == [{"epoch": 1, "train_loss": 1.0},
                                                           {"epoch": 2, "train_loss": 0.5}]
    with pytest.raises(ProxylessError, match="not a number"):
        append_metrics(path, {"epoch": 3, "target_latency_table": "4 ms"})
