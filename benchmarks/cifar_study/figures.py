"""The study's figures: test top-1 against measured latency per target (item 3), and the
architectures found for each hardware target side by side (item 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar_study.helpers import requested_target
from cifar_study.nets import searched_arch, study_space
from cifar_study.settings import SPECIALISED

KIND_STYLE = {"searched": ("*", 180, "tab:red"), "mobilenet_v2": ("s", 60, "tab:blue"),
              "random": ("o", 40, "0.45")}


def plot_accuracy_vs_latency(results: dict[str, Any], path: Path) -> Path:
    """Test top-1 against measured latency: one panel per target, one marker per kind of net."""
    from proxylessnas.figures import new_figure, save_figure

    items = results["item3"]
    figure = new_figure(5.2 * len(items), 4.0)
    axes = figure.subplots(1, len(items), squeeze=False)[0]
    for ax, (search, item) in zip(axes, items.items()):
        for kind, (marker, size, colour) in KIND_STYLE.items():
            rows = [r for r in item["rows"] if r["kind"] == kind and r["test_top1"] is not None]
            ax.scatter([r["latency_ms"] for r in rows], [r["test_top1"] for r in rows], marker=marker,
                       s=size, color=colour, label=kind, zorder=3)
            for r in rows:
                ax.annotate(r["name"].removeprefix(f"{search}-"), (r["latency_ms"], r["test_top1"]),
                            textcoords="offset points", xytext=(4, 3), fontsize=6)
        base = next(r["latency_ms"] for r in item["rows"] if r["kind"] == "searched")
        tolerance = results["settings"]["match_tolerance"]
        ax.axvspan(base * (1 - tolerance), base * (1 + tolerance), color="0.92", zorder=0,
                   label=f"searched +-{tolerance:.0%}")
        ax.axvline(item["target_ms"], color="black", ls="--", lw=1, label=f"T = {item['target_ms']:.3g} ms")
        ax.set_xlabel("measured latency, torch eager CPU, batch 1, 1 thread (ms)")
        ax.set_ylabel("CIFAR-10 test top-1, last epoch (%)")
        ax.set_title(f"{search}: target {item['target_ms']:.3g} ms", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(figure, path)


def plot_specialisation(results: dict[str, Any], path: Path) -> Path:
    """The architectures found for each target, one row each."""
    from proxylessnas.figures import new_figure, save_figure
    from proxylessnas.viz import draw_architecture

    space = study_space()
    figure = new_figure(11, 3.6 * len(SPECIALISED))
    axes = figure.subplots(len(SPECIALISED), 1, squeeze=False)[:, 0]
    figure.subplots_adjust(hspace=0.55)  # room for each row's legend below it
    for ax, name in zip(axes, SPECIALISED):
        search = results["searches"][name]
        draw_architecture(ax, space, searched_arch(space, search["choices"]))
        cross = results["cross"][name]
        ax.set_title(f"searched for {search['job']['hardware']} (T = {requested_target(search):.3g} "
                     f"{search['unit']}): torch {cross['torch']['median']:.3f} ms, ONNX Runtime "
                     f"{cross['onnxruntime']['median']:.3f} ms, {cross['macs_m']:.2f} MMACs", fontsize=9)
    return save_figure(figure, path)

