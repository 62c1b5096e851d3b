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
                        "argmax_latency": 5.2 - 0.35 * epoch, "target_latency_table": 4.0,
                        "latency_unit": "ms",
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

    assert latency_caption({"measured_latency": 2.661, "target_latency_ms": 2.647,
                            "predicted_latency": 2.3, "unit": "ms"}) == " (measured 2.66 ms, target 2.65 ms)"
    assert latency_caption({"predicted_latency": 0.2152, "unit": "MMACs"}) == " (predicted 0.215 MMACs)"
    assert latency_caption({}) == ""


def test_convergence_plot_from_new_keys_and_from_older_records(tmp_path):
    from proxylessnas.convergence_measures import normalised_entropy
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


# -- graph (cell) spaces ------------------------------------------------------------------------

NB201_STRING = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


def tiny_graph_space():
    return get_space("nasbench201", channels=4, cells_per_stage=1, num_classes=4, resolution=16)


def test_plot_run_writes_every_plot_for_a_graph_run(tmp_path):
    space = tiny_graph_space()
    records = synthetic_records(space, 4)
    write_run(tmp_path, space, records)
    written = plot_run(tmp_path)
    assert sorted(p.name for p in written) == sorted(PLOT_FILES)
    for path in written:
        with Image.open(path) as image:
            assert image.width > 100 and image.height > 100
    with Image.open(tmp_path / "plots" / "search.gif") as gif:
        assert gif.n_frames == len(records)


def test_graph_diagram_of_a_nasbench201_string(tmp_path):
    from proxylessnas.space.nasbench201 import arch_from_string

    space, arch = get_space("nasbench201"), arch_from_string(NB201_STRING)
    path = plot_architecture(space, arch, tmp_path / "nb201.png", title="cell")
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.width > 300 and image.height > 200
    text = plot_architecture(space, arch, tmp_path / "nb201.svg").read_text()  # texts as comments
    assert text.count("5 x cell") == 3 and "res_block_3x3" in text and "FC 10" in text
    assert text.count("nor_conv_3x3") >= 4 and "skip_connect" in text and "nor_conv_1x1" in text


def test_graph_skeleton_and_cell_edges():
    from proxylessnas.viz.cell_diagram import cell_edges, dead_nodes, skeleton

    space = get_space("nasbench201", cells_per_stage=2)
    boxes = skeleton(space)
    assert [box.lines[0] for box in boxes] == ["stem", "s1: 2 x cell", "s2.reduce", "s2: 2 x cell",
                                               "s3.reduce", "s3: 2 x cell", "head"]
    assert [box.cells for box in boxes] == [0, 2, 0, 2, 0, 2, 0]
    assert boxes[3].lines[1] == "32ch 16x16"
    edges = cell_edges(space)
    assert [(e.src, e.dst) for e in edges] == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    from proxylessnas.space.nasbench201 import arch_from_string

    arch = arch_from_string("|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|")
    assert dead_nodes(edges, arch.choices) == {1, 3}


def custom_graph_space():
    """Decisions not labelled 'j<-i', with different candidates: the diagram lists them."""
    from proxylessnas.space import ConvBNOp, Decision, Edge, GraphHead, GraphSpace, parse_ops

    small, convs = parse_ops("none,skip_connect,nor_conv_3x3"), parse_ops("nor_conv_{1x1,3x3,5x5}")
    return GraphSpace(
        "custom", 16, 3, ("input", "a", "b", "c"),
        (Edge("stem", "input", "a", 3, 8, 1, op=ConvBNOp(3)),
         Edge("e1", "a", "b", 8, 8, 1, decision="first"),
         Edge("e2", "b", "c", 8, 8, 1, decision="second"),
         Edge("e3", "a", "c", 8, 8, 1, decision="third")),
        (Decision("first", small), Decision("second", convs), Decision("third", small)), "c",
        GraphHead(8, 10))


def test_graph_diagram_falls_back_to_a_list_and_heatmap_has_token_columns(tmp_path):
    from proxylessnas.viz import decision_matrix, plot_probability_heatmap
    from proxylessnas.viz.cell_diagram import cell_edges

    space = custom_graph_space()
    assert cell_edges(space) is None
    arch = Arch.from_ops(space, ["skip_connect", "nor_conv_5x5", "none"])
    text = plot_architecture(space, arch, tmp_path / "custom.svg", probabilities={"first": 0.5}).read_text()
    assert "first -&gt; skip_connect  (p=0.50)" in text and "second -&gt; nor_conv_5x5" in text
    records = synthetic_records(space, 8)
    matrix, rows, tokens = decision_matrix(records[-1]["probs"], space)
    assert rows == ["first", "second", "third"]
    assert tokens == ["none", "skip_connect", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_5x5"]
    assert matrix.shape == (3, 5) and math.isnan(matrix[1, 0]) and math.isnan(matrix[0, 3])
    assert matrix[1, 2:].sum() == pytest.approx(1.0)
    with Image.open(plot_probability_heatmap(records, space, tmp_path / "p.png")) as image:
        assert image.width > 300  # 6 of the 8 epochs, one panel each


def test_op_colours_by_family():
    from proxylessnas.space import parse_op
    from proxylessnas.viz.style import op_colour, op_label

    tokens = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    assert len({op_colour(parse_op(t)) for t in tokens}) == len(tokens)
    assert op_colour(parse_op("none")) == op_colour(parse_op("zero"))
    assert [op_label(parse_op(t)) for t in ("zero", "mb_k5_e6", "nor_conv_3x3")] == [
        "skip", "MB6 5x5", "nor_conv_3x3"]
