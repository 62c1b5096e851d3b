import json
import math

import pytest
import torch
from PIL import Image

from proxylessnas import Arch, get_space
from proxylessnas.errors import ProxylessError
from proxylessnas.viz import (
    PLOT_FILES,
    append_metrics,
    entropy,
    plot_accuracy_vs_latency,
    plot_architecture,
    plot_run,
    probability_matrix,
    read_metrics,
)


def synthetic_records(space, epochs: int = 5):
    """Alphas drifting toward the first candidate, as a search would write them."""
    generator = torch.Generator().manual_seed(0)
    records = []
    for epoch in range(epochs):
        probs, arch = {}, {}
        for layer in space.searched_layers:
            logits = torch.randn(len(layer.candidates), generator=generator) * 0.3
            logits[0] += 0.6 * epoch
            p = logits.softmax(0)
            probs[layer.label] = p.tolist()
            arch[layer.label] = layer.candidates[int(p.argmax())].token
        records.append({"epoch": epoch, "phase": "search", "train_loss": 1.5 - 0.2 * epoch,
                        "train_acc": 0.3 + 0.1 * epoch, "valid_loss": 1.6 - 0.2 * epoch,
                        "valid_acc": 0.28 + 0.1 * epoch, "expected_latency": 5.0 - 0.3 * epoch,
                        "argmax_latency": 5.2 - 0.35 * epoch, "target_latency": 4.0, "latency_unit": "ms",
                        "lambda": 0.1 * epoch, "entropy": entropy(list(probs.values())),
                        "probs": probs, "arch": arch})
    return records


def write_run(tmp_path, space, records):
    for record in records:
        append_metrics(tmp_path / "metrics.jsonl", record)
    ops = [records[-1]["arch"][layer.label] for layer in space.searched_layers]
    Arch.from_ops(space, ops, metadata={"predicted_latency": 4.1}).save(tmp_path / "arch.json")


def test_plot_run_writes_every_plot(tmp_path):
    space = get_space("tiny")
    records = synthetic_records(space)
    write_run(tmp_path, space, records)
    written = plot_run(tmp_path)
    assert sorted(p.name for p in written) == sorted(PLOT_FILES)
    for path in written:
        with Image.open(path) as image:
            assert image.width > 100 and image.height > 100
    with Image.open(tmp_path / "plots" / "search.gif") as gif:
        assert gif.n_frames == len(records)


def test_metrics_round_trip_and_errors(tmp_path):
    space = get_space("tiny")
    records = synthetic_records(space, 2)
    path = tmp_path / "metrics.jsonl"
    for record in records:
        append_metrics(path, record)
    assert read_metrics(path) == json.loads(json.dumps(records))
    with open(path, "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(ProxylessError, match=r"metrics.jsonl:3"):
        read_metrics(path)
    with pytest.raises(ProxylessError, match="epoch"):
        append_metrics(path, {"train_acc": 0.4})
    with pytest.raises(ProxylessError, match="not found"):
        read_metrics(tmp_path / "missing.jsonl")


def test_plot_run_on_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ProxylessError, match="run directory not found"):
        plot_run(tmp_path / "nope")


def test_probability_matrix_layout():
    space = get_space("tiny")
    records = synthetic_records(space, 3)
    matrix, names = probability_matrix(records, space)
    assert matrix.shape == (space.num_candidate_slots, 3)
    first = space.searched_layers[0]
    assert names[0] == f"{first.label} {first.candidates[0].token}"
    assert matrix[: len(first.candidates)].sum(0) == pytest.approx([1.0, 1.0, 1.0])


def test_entropy_of_uniform_layers():
    assert entropy([[0.5, 0.5], [0.25] * 4]) == pytest.approx(math.log(2) + math.log(4))


def test_diagram_of_paper_space_and_scatter(tmp_path):
    space = get_space("proxyless-cifar")
    ops = ["zero" if any(op.is_zero for op in layer.candidates) and i % 3 == 0 else "mb_k7_e6"
           for i, layer in enumerate(space.searched_layers)]
    path = plot_architecture(space, Arch.from_ops(space, ops), tmp_path / "arch.svg")
    text = path.read_text()
    assert text.count("skip") >= ops.count("zero") and "MB6 7x7" in text
    scatter = plot_accuracy_vs_latency([("a", 3.0, 0.7), ("b", 5.0, 0.8)], tmp_path / "s.png", target=4.0)
    with Image.open(scatter) as image:
        assert image.width > 100


def test_latency_caption_names_units():
    from proxylessnas.viz.run import latency_caption

    assert latency_caption({"measured_latency": 2.661, "target_latency": 2.647,
                            "predicted_latency": 2.3, "unit": "ms"}) == " (measured 2.66 ms, target 2.65 ms)"
    assert latency_caption({"predicted_latency": 0.2152, "unit": "MMACs"}) == " (predicted 0.215 MMACs)"
    assert latency_caption({}) == ""


def test_convergence_plot_from_new_keys_and_from_older_records(tmp_path):
    from proxylessnas.search.convergence import normalised_entropy
    from proxylessnas.viz import plot_convergence
    from proxylessnas.viz.curves import convergence_series

    space = get_space("tiny")
    records = synthetic_records(space, 4)  # older rows: probs and arch, no convergence keys
    series = convergence_series(records)
    assert series["normalised_entropy"][1] == pytest.approx(
        [normalised_entropy(list(r["probs"].values())) for r in records])
    assert series["normalised_entropy"][1][-1] < series["normalised_entropy"][1][0]  # drifting to one op
    assert series["argmax_changes"][1][0] == 0
    records[-1].update(normalised_entropy=0.5, mean_max_prob=0.7, argmax_changes=3)
    series = convergence_series(records)
    assert (series["normalised_entropy"][1][-1], series["mean_max_prob"][1][-1]) == (0.5, 0.7)
    assert series["argmax_changes"][1][-1] == 3
    with Image.open(plot_convergence(records, tmp_path / "c.png")) as image:
        assert image.width > 100
    # rows with none of it (older files, no probs or arch): the curves are skipped, the plot still drawn
    bare = [{"epoch": 1, "train_acc": 0.3}, {"epoch": 2, "train_acc": 0.4}]
    assert all(values == [] for _, values in convergence_series(bare).values())
    with Image.open(plot_convergence(bare, tmp_path / "bare.png")) as image:
        assert image.width > 100
    append_metrics(tmp_path / "one.jsonl", records[-1])  # the new keys pass the record check
    assert read_metrics(tmp_path / "one.jsonl")[0]["argmax_changes"] == 3
