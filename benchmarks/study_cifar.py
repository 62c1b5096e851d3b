"""CIFAR-10 results study (issue 8, items 3, 4, 5), run through the ``proxyless`` command line.

3. Accuracy at equal latency: gradient searches (``full_v2``) for a low and a high CPU latency
   target; each searched net against the MobileNetV2 whose measured latency is closest (two
   families on a width grid: the zoo net's CIFAR-size variant, and k3 e6 blocks on the study
   backbone), and against random architectures of the study
   space measured within +-5 % of it (searched net, width grid and candidates timed in one
   interleaved session); every net trained with the same budget and seed.
4. Hardware specialisation: searches at the same relative target position for torch eager CPU
   (``cpu``), ONNX Runtime (``onnxruntime``) and MACs (``flops``); every found net measured on
   every target and trained; a cross table and the diagrams side by side.
5. Gradient (``full_v2``, ``two``) against REINFORCE at the same target and number of weight steps.

    python benchmarks/study_cifar.py --quick     # plumbing check: tiny data, 1 epoch (5:45 here, --jobs 1)
    python benchmarks/study_cifar.py [--full]    # the published numbers (expected ~2.4 h, 2 cores)
        [--work DIR] [--data cifar10:DIR] [--jobs 2] [--report-only]

Sizing of ``--full`` (measured on the 2-core machine, one thread, load ~2.5 from other jobs):
one search epoch of 50 weight steps at batch 64 took 45 s without and 110 s with architecture
steps (one per weight step); a whole search of 2 + 6 such epochs took 12:12 (about 160 s of it
calibration, final selection, test and plots). Full mode uses 30-step epochs, 2 + 4: about 7 min per
measured-hardware search, ~40 min for all six. One training epoch on 600 images per class (6,000
train + 6,000 test, batch 64) took 81 s for a searched net (2.3 ms) and 128 s for a random net of
the space; on 1,000 per class at batch 128: 124 s, 106 s (mbv2_k3e6_w0.35), 192 s (random), 99 s
(mobilenet_v2_w0.25). Twenty trainings of 5 epochs, two at a time: ~95 min. With the ONNX Runtime
table (~4 min if not cached), matching (~2 min) and 36 ``latency measure`` calls (~3 min): ~2.4 h.

Study space: ``proxyless-cifar`` with ``space.width_mult=0.5 space.depths=[2,2,2,2,2,1]``;
latency: torch eager, CPU, batch 1, one thread. Every search, training and cross measurement is a
``proxyless`` command (listed in the results); the Python API is used only where the command line
has no equivalent (MobileNetV2 at width w, random architectures, the interleaved matching
session, MACs). Each finished unit is recorded in ``<work>/state.json``: rerunning skips it and
continues an unfinished search or training with ``--resume``. Results go to
``benchmarks/results/study/<mode>/``: ``study_cifar.json`` (every number, command, version),
``study_cifar.md`` (tables and readings), ``accuracy_vs_latency.png``,
``specialisation_diagrams.png``.

Quick mode keeps its latency tables in ``<work>/cache`` (``PROXYLESS_CACHE``), built fast
(0.1 s per block), so it never writes low-quality tables into the user's cache; full mode uses
the user's cache and the default table quality. Its numbers check the plumbing, nothing else.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from proxylessnas.runtime.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "study"
DEFAULT_DATA = "cifar10:../shared/data/cifar10"  # relative to the repository (the commands run there)
SPACE_OVERRIDES = {"width_mult": 0.5, "depths": [2, 2, 2, 2, 2, 1]}
SPACE_ARGS = ("space.width_mult=0.5", "space.depths=[2,2,2,2,2,1]")
STATE_VERSION = 1


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class StudySettings:
    """Everything that sizes the study; one instance per mode."""

    mode: str
    search_limit_per_class: int  # images per class for the searches (weights + arch part, and test)
    search_valid_size: int  # architecture-validation images
    search_batch_size: int
    search_steps_per_epoch: int
    search_warmup_epochs: int
    search_epochs: int
    search_calibration_nets: int
    target_positions: tuple[float, float]  # (low, high) of the way from the cheapest to the dearest net
    train_limit_per_class: int  # images per class for training (and at most that many test images)
    train_epochs: int
    train_batch_size: int
    random_nets: int  # matched random architectures per target
    random_pool: int  # random architectures sampled before the pre-filter
    random_prefilter: float  # predicted cost within this fraction of the searched net's
    random_per_session: int  # candidates timed per matching session
    random_max_sessions: int
    zoo_widths: tuple[float, ...]  # width multipliers tried for mobilenet_v2 (its CIFAR-size variant)
    backbone_widths: tuple[float, ...]  # ... and for k3 e6 blocks on the study backbone
    session_rounds: int  # interleaved timing: rounds x per_round runs per net
    session_per_round: int
    cross_passes: int  # ``proxyless latency measure`` passes per net and backend (median taken)
    cross_rounds: int
    match_tolerance: float = 0.05
    noise_seeds: tuple[int, ...] = ()  # extra trainings of the low searched net: seed-to-seed spread
    table_seconds_per_key: float | None = None  # quick: private fast tables; None: the user's cache
    search_plots: bool = True


QUICK = StudySettings(
    mode="quick", search_limit_per_class=40, search_valid_size=100, search_batch_size=32,
    search_steps_per_epoch=6, search_warmup_epochs=1, search_epochs=1, search_calibration_nets=4,
    target_positions=(0.5, 0.8), train_limit_per_class=40, train_epochs=1, train_batch_size=32,
    random_nets=2, random_pool=2000, random_prefilter=0.03, random_per_session=8, random_max_sessions=3,
    zoo_widths=(0.25,), backbone_widths=(0.2, 0.35, 0.5), session_rounds=6, session_per_round=3,
    cross_passes=1, cross_rounds=5,
    table_seconds_per_key=0.1, search_plots=False)

FULL = StudySettings(
    mode="full", search_limit_per_class=600, search_valid_size=1000, search_batch_size=64,
    search_steps_per_epoch=30, search_warmup_epochs=2, search_epochs=4, search_calibration_nets=12,
    target_positions=(0.5, 0.8), train_limit_per_class=600, train_epochs=5, train_batch_size=64,
    random_nets=5, random_pool=4000, random_prefilter=0.03, random_per_session=16, random_max_sessions=4,
    zoo_widths=(0.25, 0.3, 0.35, 0.4, 0.5),
    backbone_widths=(0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.375, 0.4, 0.45, 0.5, 0.6),
    session_rounds=20, session_per_round=5, cross_passes=3, cross_rounds=15, noise_seeds=(1, 2))


@dataclass(frozen=True)
class SearchJob:
    """One ``proxyless search``: its name, hardware target, target position and algorithm."""

    name: str
    hardware: str
    target: str  # "low" or "high": which of the settings' target positions
    strategy: str = "gradient"
    binary_mode: str = "full_v2"


SEARCHES = (
    SearchJob("cpu-low", "cpu", "low"),  # items 3, 4 (cpu) and 5 (full_v2)
    SearchJob("cpu-high", "cpu", "high"),  # item 3
    SearchJob("onnxruntime-low", "onnxruntime", "low"),  # item 4
    SearchJob("flops-low", "flops", "low"),  # item 4
    SearchJob("cpu-low-two", "cpu", "low", binary_mode="two"),  # item 5
    SearchJob("cpu-low-reinforce", "cpu", "low", strategy="reinforce"),  # item 5
)
SPECIALISED = ("cpu-low", "onnxruntime-low", "flops-low")
STRATEGY_RUNS = ("cpu-low", "cpu-low-two", "cpu-low-reinforce")
MATCHED = ("cpu-low", "cpu-high")
CROSS_BACKENDS = ("torch", "onnxruntime")


# ----------------------------------------------------------------------------- pure helpers

def relative_gap(value: float, reference: float) -> float:
    """(value - reference) / reference."""
    return value / reference - 1.0


def closest_to(latencies: dict[str, float], reference: float) -> str:
    """The name whose latency is closest to ``reference`` (ties: the first)."""
    if not latencies:
        raise ValueError("no latencies to choose from")
    return min(latencies, key=lambda name: abs(latencies[name] - reference))


def accept_matched(candidates: Sequence[tuple[str, float]], reference: float, tolerance: float,
                   count: int) -> list[str]:
    """The first ``count`` candidates, in the given (random) order, within +-tolerance of ``reference``.

    Order, not closeness, decides: the matched nets stay a random sample of the latency band."""
    inside = [name for name, latency in candidates if abs(relative_gap(latency, reference)) <= tolerance]
    return inside[:count]


def tilt_weights(costs: Sequence[float], beta: float) -> list[float]:
    """Unnormalised ``q(j) ~ exp(-beta c_j)`` of one layer (shifted by the cheapest: no overflow)."""
    low = min(costs)
    return [math.exp(-beta * (c - low)) for c in costs]


def tilted_mean(fixed: float, layer_costs: Sequence[Sequence[float]], beta: float) -> float:
    """Expected cost ``fixed + sum_l sum_j q_lj c_lj`` under ``q_l = softmax(-beta c_l)``."""
    total = fixed
    for costs in layer_costs:
        weights = tilt_weights(costs, beta)
        total += sum(w * c for w, c in zip(weights, costs)) / sum(weights)
    return total


def tilt_for_mean(fixed: float, layer_costs: Sequence[Sequence[float]], target: float,
                  iterations: int = 200) -> float:
    """The beta whose tilted distribution has expected cost ``target`` (bisection; the mean falls
    as beta grows). A target beyond the reachable range gives the extreme beta (+-1e3 / cost scale)."""
    scale = max(max(c) - min(c) for c in layer_costs) or 1.0
    low, high = -1e3 / scale, 1e3 / scale
    for _ in range(iterations):
        middle = (low + high) / 2
        if tilted_mean(fixed, layer_costs, middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def sample_tilted(layer_costs: Sequence[Sequence[float]], beta: float, count: int,
                  seed: int) -> list[list[int]]:
    """``count`` architectures (candidate index per layer) drawn from ``q_l(j) ~ exp(-beta c_lj)``.

    ``q(arch) ~ exp(-beta * cost(arch))``: every architecture of the same total cost is equally
    likely, so those kept in a narrow cost window are a uniform sample of the space's architectures
    of that cost, also far from the space's typical cost where uniform sampling (beta = 0) finds
    almost none."""
    import random

    rng = random.Random(seed)
    layers = [tilt_weights(costs, beta) for costs in layer_costs]
    return [[rng.choices(range(len(w)), weights=w)[0] for w in layers] for _ in range(count)]


def ops_differ(first: dict[str, str], second: dict[str, str]) -> int:
    """Number of layers whose op differs between two ``choices`` mappings (same space)."""
    return sum(first[label] != second[label] for label in first)


def arch_character(choices: dict[str, str]) -> tuple[int, float, float]:
    """(searched blocks kept, mean kernel size, mean expand ratio) over the non-zero blocks."""
    from proxylessnas.space.ops import parse_op

    ops = [parse_op(token, label) for label, token in choices.items()]
    kept = [op for op in ops if not op.is_zero]
    if not kept:
        return 0, 0.0, 0.0
    return (len(kept), sum(op.kernel_size for op in kept) / len(kept),
            sum(op.expand_ratio for op in kept) / len(kept))


def rank_descending(values: dict[str, float]) -> dict[str, int]:
    """1 for the largest value, 2 for the next, ... (ties share the better rank)."""
    ordered = sorted(values.values(), reverse=True)
    return {name: ordered.index(value) + 1 for name, value in values.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """3725 -> '1:02:05', 125 -> '2:05'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def with_option(spec: str, option: str) -> str:
    """A dataset spec with one more ``key=value`` option."""
    return f"{spec}{'&' if '?' in spec else '?'}{option}"


def dataset_folder(spec: str) -> Path | None:
    """The folder of a ``NAME:PATH[?options]`` spec (None when it names none)."""
    body = spec.split("?", 1)[0]
    if ":" not in body:
        return None
    return Path(body.split(":", 1)[1]).expanduser()


def repository_relative(spec: str, cwd: Path) -> str:
    """The spec with its folder written relative to the repository (where the commands run);
    a relative folder in ``spec`` is taken relative to ``cwd``."""
    folder = dataset_folder(spec)
    if folder is None:
        return spec
    name, rest = spec.split(":", 1)
    options = rest.split("?", 1)[1] if "?" in rest else None
    absolute = folder if folder.is_absolute() else cwd / folder
    relative = os.path.relpath(absolute, REPO)
    return f"{name}:{relative}" + (f"?{options}" if options is not None else "")


def study_space(num_classes: int = 10):
    """The study space exactly as ``proxyless search`` builds it for CIFAR-10 (same fingerprint,
    hence the same cached latency table)."""
    from proxylessnas import get_space

    return get_space("proxyless-cifar", num_classes=num_classes, resolution=32, in_chs=3, **SPACE_OVERRIDES)


def mobilenet_v2_arch(width: float, num_classes: int = 10):
    """(space, arch) of mobilenet_v2's CIFAR-size variant at width multiplier ``width``.

    The zoo entry's ops (k3 e6 blocks, depths 2-3-4-3-3-1) in ``proxyless-cifar`` with every width
    scaled as MobileNetV2 does: ``make_divisible(c * width, 8)`` for stem, first block and stages,
    the 1280-wide head kept below width 1."""
    from proxylessnas import Arch, get_space
    from proxylessnas.nets.zoo import ZOO
    from proxylessnas.ops.blocks import make_divisible

    entry = ZOO["mobilenet_v2"]
    base = entry.space_overrides
    head = base["head_width"] if width <= 1.0 else make_divisible(base["head_width"] * width, 8)
    overrides = {"stem_width": make_divisible(base["stem_width"] * width, 8),
                 "first_width": make_divisible(base["first_width"] * width, 8),
                 "stage_widths": [make_divisible(c * width, 8) for c in base["stage_widths"]],
                 "head_width": head}
    space = get_space("proxyless-cifar", num_classes=num_classes, resolution=32, in_chs=3, **overrides)
    return space, Arch.from_ops(space, entry.ops, metadata={"zoo": "mobilenet_v2", "width_mult": width})


def backbone_mobilenet_v2_arch(width: float, num_classes: int = 10):
    """(space, arch): MobileNetV2's block (k3 e6) in every searched block of the study backbone
    (``proxyless-cifar``, depths 2-2-2-2-2-1) at width multiplier ``width`` (the study space is 0.5).

    The zoo net's own depths (18 blocks) are too slow for the study's targets in eager mode at any
    width (per-block overhead); this shallower MobileNetV2 reaches them."""
    from proxylessnas import Arch, get_space

    space = get_space("proxyless-cifar", num_classes=num_classes, resolution=32, in_chs=3, width_mult=width,
                      depths=SPACE_OVERRIDES["depths"])
    return space, Arch.from_ops(space, ["mb_k3_e6"] * len(space.searched_layers),
                                metadata={"baseline": "mobilenet_v2 blocks", "width_mult": width})


BASELINE_FAMILIES = {"mobilenet_v2": mobilenet_v2_arch, "mbv2_k3e6": backbone_mobilenet_v2_arch}


def baseline_nets(zoo_widths: Sequence[float], backbone_widths: Sequence[float]) -> dict[str, tuple]:
    """Name -> (space, arch) of every distinct baseline net: ``mobilenet_v2_w<w>``, ``mbv2_k3e6_w<w>``."""
    nets = {}
    for family, widths in (("mobilenet_v2", zoo_widths), ("mbv2_k3e6", backbone_widths)):
        for width in distinct_widths(widths, BASELINE_FAMILIES[family]):
            nets[f"{family}_w{width:g}"] = BASELINE_FAMILIES[family](width)
    return nets


def distinct_widths(widths: Sequence[float], build=mobilenet_v2_arch) -> list[float]:
    """Width multipliers that give different nets (channels are rounded to multiples of 8)."""
    seen, kept = set(), []
    for width in widths:
        space, _ = build(width)
        shape = tuple((layer.in_chs, layer.out_chs) for layer in space.layers) + (space.stem.out_chs,)
        if shape not in seen:
            seen.add(shape)
            kept.append(width)
    return kept


def macs_params(space, arch) -> tuple[float, float]:
    """(MMACs, M parameters) of the standalone net, counted analytically."""
    from proxylessnas.nets.config import net_config
    from proxylessnas.nets.profile import count_params_macs

    params, macs = count_params_macs(net_config(space, arch))
    return macs / 1e6, params / 1e6


# ----------------------------------------------------------------------------- state

class StudyState:
    """``<work>/state.json``: finished units and their results, written atomically."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        if path.exists():
            self.data = json.loads(path.read_text())
            if self.data.get("mode") != mode:
                from proxylessnas.errors import ProxylessError

                raise ProxylessError(f"the work folder holds a {self.data.get('mode')} study", str(path),
                                     f"give another --work for the {mode} study")
        else:
            self.data = {"version": STATE_VERSION, "mode": mode, "units": {}, "commands": []}

    def done(self, unit: str) -> bool:
        return unit in self.data["units"]

    def result(self, unit: str) -> Any:
        return self.data["units"][unit]["result"]

    def record(self, unit: str, result: Any, seconds: float) -> None:
        with self.lock:
            self.data["units"][unit] = {"result": result, "seconds": round(seconds, 2),
                                        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "commit": current_commit()}
            self._save()

    def note_command(self, unit: str, command: str) -> None:
        with self.lock:
            entry = {"unit": unit, "command": command}
            if entry not in self.data["commands"]:
                self.data["commands"].append(entry)
                self._save()

    def _save(self) -> None:
        from proxylessnas.runtime.atomic import write_json_atomic

        write_json_atomic(self.path, self.data)


# ----------------------------------------------------------------------------- the study

class UnitFailed(Exception):
    """A sub-command failed; the message says which and where its log is."""


class Study:
    """Runs the units in order (searches, matching, cross measurements, trainings), then reports."""

    def __init__(self, settings: StudySettings, work: Path, data: str, jobs: int) -> None:
        self.settings = settings
        self.work = work
        self.data = data
        self.jobs = jobs
        self.state = StudyState(work / "state.json", settings.mode)
        self.started = time.perf_counter()
        self.print_lock = threading.Lock()
        self.children: set[subprocess.Popen] = set()
        self.stopping = False
        self.environment = {"OMP_NUM_THREADS": "1"}
        if settings.table_seconds_per_key is not None:
            self.environment["PROXYLESS_CACHE"] = str(work / "cache")
            os.environ["PROXYLESS_CACHE"] = str(work / "cache")
        self.search_data = with_option(data, f"limit_per_class={settings.search_limit_per_class}")
        self.train_data = with_option(data, f"limit_per_class={settings.train_limit_per_class}")

    # --- logging and sub-processes
    def log(self, text: str) -> None:
        with self.print_lock:
            elapsed = duration(time.perf_counter() - self.started)
            print(f"[{datetime.now().strftime('%H:%M:%S')} +{elapsed}] {text}", flush=True)

    def shown(self, arguments: Sequence[str]) -> str:
        """The command as a user types it (environment prefix, ``proxyless`` console script)."""
        shown = {key: self.show_path(Path(value)) if key == "PROXYLESS_CACHE" else value
                 for key, value in self.environment.items()}
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in shown.items())
        return f"{prefix} proxyless {shlex.join(arguments)}"

    def proxyless(self, unit: str, arguments: Sequence[str]) -> None:
        """Run ``proxyless ARGUMENTS`` (as ``python -m proxylessnas``); output to ``logs/<unit>.log``."""
        if self.stopping:
            raise UnitFailed("stopped")
        self.state.note_command(unit, self.shown(arguments))
        log_path = self.work / "logs" / f"{unit.replace('/', '_')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **self.environment}
        with open(log_path, "a") as handle:
            handle.write(f"$ {self.shown(arguments)}\n")
            handle.flush()
            child = subprocess.Popen([sys.executable, "-m", "proxylessnas", *arguments], cwd=REPO,
                                     stdout=handle, stderr=subprocess.STDOUT, env=environment,
                                     start_new_session=True, preexec_fn=_die_with_parent)
            self.children.add(child)
            try:
                code = child.wait()
            finally:
                self.children.discard(child)
        if code != 0:
            tail = log_path.read_text().strip().splitlines()[-1:] or [""]
            raise UnitFailed(f"{unit}: 'proxyless {arguments[0]}' exited with {code}: {tail[0]} "
                             f"(log {log_path})")

    def stop_children(self) -> None:
        """Send each running search or training one SIGTERM: it checkpoints and exits; a rerun
        continues it with --resume."""
        self.stopping = True
        for child in list(self.children):
            child.send_signal(signal.SIGTERM)

    def unit(self, name: str, action) -> Any:
        """Run ``action()`` unless ``name`` is finished; record its result."""
        if self.state.done(name):
            return self.state.result(name)
        self.log(f"start {name}")
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
        self.state.record(name, result, seconds)
        self.log(f"done  {name} ({duration(seconds)})")
        return result

    # --- paths
    def search_dir(self, name: str) -> Path:
        return self.work / "search" / name

    def train_dir(self, name: str) -> Path:
        return self.work / "train" / name

    def arch_path(self, name: str) -> Path:
        return self.work / "archs" / f"{name}.json"

    def show_path(self, path: Path) -> str:
        try:
            return str(path.relative_to(REPO))
        except ValueError:
            return str(path)

    # --- step 0: fast private tables (quick mode only)
    def build_quick_tables(self) -> dict[str, Any]:
        from proxylessnas.hardware.build import build_lut
        from proxylessnas.hardware.targets import backend_for, cached_table_path

        space = study_space()
        built = {}
        for hardware in ("cpu", "onnxruntime"):
            backend = backend_for(hardware, 1, 1)
            path = cached_table_path(space, backend)
            table = build_lut(space, backend, path, seconds_per_key=self.settings.table_seconds_per_key,
                              progress=False)
            built[hardware] = {"path": str(path), "keys": len(table.entries)}
        return built

    # --- step 1: searches
    def search_arguments(self, job: SearchJob) -> list[str]:
        s = self.settings
        position = s.target_positions[0 if job.target == "low" else 1]
        arguments = [
            "search", "--config", "cifar10", "--dataset", self.search_data, "--hardware", job.hardware,
            "--strategy", job.strategy,
            *(["--binary-mode", job.binary_mode] if job.strategy == "gradient" else []),
            "--warmup-epochs", str(s.search_warmup_epochs),
            "--epochs", str(s.search_epochs), "--out", self.show_path(self.search_dir(job.name)),
            "--no-progress", *SPACE_ARGS, f"data.batch_size={s.search_batch_size}",
            f"data.valid_batch_size={s.search_batch_size}", f"data.valid_size={s.search_valid_size}",
            "data.eval_batch_size=500", f"search.steps_per_epoch={s.search_steps_per_epoch}",
            f"latency.target_position={position}", f"latency.calibrate={s.search_calibration_nets}",
            "arch.lr=0.01", "run.threads=1", "run.device=cpu", "run.seed=0"]
        if job.strategy == "gradient":
            arguments.append("arch.update_every=1")
        else:
            arguments += ["arch.update_every=5", "reinforce.samples=8"]
        if not s.search_plots:
            arguments.append("run.plots=false")
        return arguments

    def run_search(self, job: SearchJob) -> dict[str, Any]:
        folder = self.search_dir(job.name)
        arguments = self.search_arguments(job)
        started = time.perf_counter()
        summary = finished_summary(folder)
        resumed = False
        if summary is None:
            resumed = (folder / "checkpoint.pt").exists()
            self.proxyless(f"search-{job.name}", arguments + (["--resume"] if resumed else []))
            summary = finished_summary(folder)
            if summary is None:
                raise UnitFailed(f"search {job.name} ended without summary.json ({folder})")
        wall = time.perf_counter() - started
        metrics = read_metrics(folder / "metrics.jsonl")
        keep = ("choices", "predicted_latency", "measured_latency", "unit", "target_latency_ms",
                "target_latency_table", "calibration", "predicted_latency_calibrated", "latency_mode",
                "cheapest_latency", "most_expensive_latency", "selection", "measured_within_tolerance",
                "test_accuracy", "epochs")
        s = self.settings
        weight_steps = (s.search_warmup_epochs + s.search_epochs) * s.search_steps_per_epoch
        uniform = sum(math.log(len(layer.candidates)) for layer in study_space().searched_layers)
        return {"job": asdict(job), "command": self.shown(arguments), "wall_seconds": round(wall, 1),
                "resumed": resumed, "weight_steps": weight_steps,
                "final_entropy": metrics[-1].get("entropy"), "uniform_entropy": uniform,
                "arch_path": self.show_path(folder / "arch.json"),
                "epoch_seconds": [row.get("seconds") for row in metrics],
                **{key: summary.get(key) for key in keep}}

    # --- step 2: matching (one interleaved session, then a confirmation session)
    def time_session(self, nets: list[tuple[str, Any, Any]], seed: int) -> dict[str, dict[str, float]]:
        """Median, p10, p90 (ms) of each (name, space, arch), timed in one interleaved session."""
        import torch

        from proxylessnas import build_net
        from proxylessnas.hardware.measure import Backend, measure_interleaved, prepare_runner

        torch.set_num_threads(1)
        backend = Backend("torch", "cpu", 1, 1)
        runners = [prepare_runner(build_net(space, arch), (1, 3, 32, 32), backend, seed=i)
                   for i, (_, space, arch) in enumerate(nets)]
        stats = measure_interleaved(runners, warmup=10, rounds=self.settings.session_rounds,
                                    per_round=self.settings.session_per_round, threads=1, seed=seed)
        return {name: {"median": s.median, "p10": s.p10, "p90": s.p90, "count": s.count}
                for (name, _, _), s in zip(nets, stats)}

    def match(self, search_name: str, seed: int) -> dict[str, Any]:
        from proxylessnas import Arch
        from proxylessnas.hardware.targets import get_cost_model
        from proxylessnas.runtime.atomic import write_json_atomic

        s = self.settings
        space = study_space()
        searched = Arch.load(self.search_dir(search_name) / "arch.json", space)
        baselines = baseline_nets(s.zoo_widths, s.backbone_widths)
        # random archs of the searched net's predicted cost: tilted sampling, then a +-prefilter window
        cost = get_cost_model("cpu", space, progress=False)
        reference = cost.arch_cost(space, searched)
        fixed, vectors = cost.candidate_costs(space)
        layer_costs = [[float(c) for c in vector] for vector in vectors]
        beta = tilt_for_mean(fixed, layer_costs, reference)
        pool, seen = [], {json.dumps(searched.to_dict()["choices"], sort_keys=True)}
        for index, choice in enumerate(sample_tilted(layer_costs, beta, s.random_pool, seed)):
            ops = [layer.candidates[i] for layer, i in zip(space.searched_layers, choice)]
            arch = Arch.from_ops(space, ops)
            key = json.dumps(arch.to_dict()["choices"], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            if abs(relative_gap(cost.arch_cost(space, arch), reference)) <= s.random_prefilter:
                pool.append((f"sample{index}", arch))
        sessions, accepted = [], []
        cursor = 0
        while len(accepted) < s.random_nets and len(sessions) < s.random_max_sessions and cursor < len(pool):
            batch = pool[cursor:cursor + s.random_per_session]
            cursor += len(batch)
            widths_now = [] if sessions else [(n, sp, a) for n, (sp, a) in baselines.items()]
            nets = [("searched", space, searched), *widths_now, *[(n, space, a) for n, a in batch]]
            timed = self.time_session(nets, seed=seed + len(sessions))
            sessions.append(timed)
            base = timed["searched"]["median"]
            accepted += accept_matched([(n, timed[n]["median"]) for n, _ in batch], base, s.match_tolerance,
                                       s.random_nets - len(accepted))
        if len(accepted) < s.random_nets:
            raise UnitFailed(f"matching {search_name}: only {len(accepted)} of {s.random_nets} random "
                             f"architectures measured within +-{s.match_tolerance:.0%} after "
                             f"{len(sessions)} sessions; raise random_pool or random_max_sessions")
        first = sessions[0]
        baseline_latency = {n: first[n]["median"] for n in baselines}
        chosen_baseline = closest_to(baseline_latency, first["searched"]["median"])
        by_name = dict(pool)
        random_names = [f"{search_name}-random{i + 1}" for i in range(len(accepted))]
        for name, sample in zip(random_names, accepted):
            write_json_atomic(self.arch_path(name), by_name[sample].to_dict())
        mbv2_name = f"{search_name}-{chosen_baseline}"
        write_json_atomic(self.arch_path(mbv2_name), baselines[chosen_baseline][1].to_dict())
        # confirmation: the nets to be trained, timed together once more; these numbers are reported
        final_nets = [("searched", space, searched), (mbv2_name, *baselines[chosen_baseline]),
                      *[(n, space, by_name[sample]) for n, sample in zip(random_names, accepted)]]
        confirmation = self.time_session(final_nets, seed=seed + 100)
        nets = {}
        for name, net_space, arch in final_nets:
            macs, params = macs_params(net_space, arch)
            nets[name] = {"latency_ms": confirmation[name]["median"], "p10": confirmation[name]["p10"],
                          "p90": confirmation[name]["p90"], "macs_m": macs, "params_m": params,
                          "choices": {k: v.token for k, v in arch.choices.items()}}
        return {"searched_table_cost": reference, "tilt_beta": beta, "pool_size": len(pool),
                "candidates_timed": cursor,
                "sessions": sessions, "baseline_latency": baseline_latency,
                "searched_latency_first_session": first["searched"]["median"],
                "mobilenet_v2": mbv2_name, "random": random_names,
                "random_samples": dict(zip(random_names, accepted)), "nets": nets,
                "arch_paths": {n: self.show_path(self.arch_path(n)) for n in [mbv2_name, *random_names]}}

    # --- step 3: cross measurements with ``proxyless latency measure``
    def measure(self, net: str, arch_path: str, backend: str, pass_index: int) -> dict[str, Any]:
        out = self.work / "measure" / f"{net}-{backend}-{pass_index}.json"
        arguments = ["latency", "measure", arch_path, "--backend", backend, "--threads", "1",
                     "--rounds", str(self.settings.cross_rounds), "--json", self.show_path(out)]
        self.proxyless(f"measure-{net}-{backend}-{pass_index}", arguments)
        result = json.loads(out.read_text())
        return {"median": result["median"], "p10": result["p10"], "p90": result["p90"],
                "command": self.shown(arguments)}

    # --- step 4: trainings
    def train_arguments(self, arch_path: str, out: Path, seed: int = 0) -> list[str]:
        s = self.settings
        return ["train", arch_path, "--dataset", self.train_data, "--epochs", str(s.train_epochs),
                "--batch-size", str(s.train_batch_size), "--seed", str(seed), "--device", "cpu",
                "--out", self.show_path(out), "--no-progress"]

    def train(self, name: str, arch_path: str, seed: int = 0) -> dict[str, Any]:
        out = self.train_dir(name)
        arguments = self.train_arguments(arch_path, out, seed)
        metrics = read_metrics(out / "metrics.jsonl", required=False)
        if len(metrics) < self.settings.train_epochs:
            resume = (out / "last.pt").exists()
            self.proxyless(f"train-{name}", arguments + (["--resume"] if resume else []))
            metrics = read_metrics(out / "metrics.jsonl", required=False)
        if len(metrics) != self.settings.train_epochs:
            raise UnitFailed(f"training {name} ended after {len(metrics)} of {self.settings.train_epochs} "
                             f"epochs ({out})")
        last = metrics[-1]
        return {"command": self.shown(arguments), "arch_path": arch_path, "seed": seed,
                "test_top1": last["test_top1"], "test_top5": last["test_top5"],
                "train_top1": last["train_top1"], "per_epoch_top1": [m["test_top1"] for m in metrics],
                "epoch_seconds": [m["epoch_seconds"] for m in metrics]}

    # --- the whole study
    def trainings(self) -> dict[str, tuple[str, int]]:
        """Training name -> (arch path, seed), each net once."""
        runs: dict[str, tuple[str, int]] = {}
        for job in SEARCHES:
            runs[job.name] = (self.state.result(f"search/{job.name}")["arch_path"], 0)
        for search in MATCHED:
            matched = self.state.result(f"match/{search}")
            for name, path in matched["arch_paths"].items():
                runs[name] = (path, 0)
        for seed in self.settings.noise_seeds:
            runs[f"cpu-low-seed{seed}"] = (runs["cpu-low"][0], seed)
        return runs

    def run(self) -> dict[str, Any]:
        if self.settings.table_seconds_per_key is not None:
            self.unit("tables", self.build_quick_tables)
        for job in SEARCHES:
            self.unit(f"search/{job.name}", lambda job=job: self.run_search(job))
        for index, search in enumerate(MATCHED):
            self.unit(f"match/{search}", lambda name=search, seed=1000 * (index + 1): self.match(name, seed))
        for pass_index in range(self.settings.cross_passes):
            for job in SEARCHES:
                path = self.state.result(f"search/{job.name}")["arch_path"]
                for backend in CROSS_BACKENDS:
                    self.unit(f"measure/{job.name}/{backend}/{pass_index}",
                              lambda n=job.name, p=path, b=backend, k=pass_index: self.measure(n, p, b, k))
        runs = self.trainings()
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(self.unit, f"train/{name}",
                                   lambda n=name, a=arch, s=seed: self.train(n, a, s))
                       for name, (arch, seed) in runs.items()]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                self.stopping = True  # queued trainings are not started; a running one finishes
                for future in futures:
                    future.cancel()
                raise
        return self.report()

    # --- report
    def report(self) -> dict[str, Any]:
        results = collect_results(self.state.data, self.settings, self.search_data, self.train_data,
                                  self.data, self.jobs)
        folder = RESULTS / self.settings.mode
        folder.mkdir(parents=True, exist_ok=True)
        from proxylessnas.runtime.atomic import write_json_atomic

        write_json_atomic(folder / "study_cifar.json", results)
        plot_accuracy_vs_latency(results, folder / "accuracy_vs_latency.png")
        plot_specialisation(results, folder / "specialisation_diagrams.png")
        (folder / "study_cifar.md").write_text(render_markdown(results))
        self.log(f"wrote {self.show_path(folder)}/study_cifar.json, study_cifar.md, accuracy_vs_latency.png, "
                 "specialisation_diagrams.png")
        return results


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the study process dies (Linux), so no orphan keeps
    writing into a run folder that a rerun resumes."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def finished_summary(folder: Path) -> dict[str, Any] | None:
    """A finished search's summary: summary.json, or (killed between the final checkpoint and
    summary.json) the summary stored in the finished checkpoint; None while unfinished."""
    path = folder / "summary.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass  # written non-atomically and cut off: the checkpoint has it
    checkpoint = folder / "checkpoint.pt"
    if checkpoint.is_file():
        from proxylessnas.runtime.checkpoint import load_checkpoint

        state = load_checkpoint(checkpoint)
        if state.get("finished") and isinstance(state.get("summary"), dict):
            return state["summary"]
    return None


def requested_target(search: dict[str, Any]) -> float:
    """A search's target as requested: ms on measured hardware, else the cost model's unit
    (results stored before the keys named their unit hold it as "target_latency")."""
    if "target_latency" in search:
        return search["target_latency"]
    measured = search.get("target_latency_ms")
    return search["target_latency_table"] if measured is None else measured


# ----------------------------------------------------------------------------- results

def current_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    import torch

    from proxylessnas import __version__
    from proxylessnas.hardware.measure import backend_version, device_name

    return {"cpu": device_name("cpu"), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": backend_version("onnxruntime"),
            "proxylessnas": __version__, "commit": current_commit(), "platform": platform.platform(),
            "load_average": list(os.getloadavg())}


def latency_tables() -> dict[str, Any]:
    """Path and provenance of the study space's cached tables (cpu, onnxruntime) used by the searches."""
    from proxylessnas.hardware.lut import LatencyTable
    from proxylessnas.hardware.targets import backend_for, cached_table_path

    tables = {}
    for hardware in ("cpu", "onnxruntime"):
        path = cached_table_path(study_space(), backend_for(hardware, 1, 1))
        if path.is_file():
            table = LatencyTable.load(path)
            keep = ("device", "backend", "backend_version", "threads", "clock", "date", "method")
            tables[hardware] = {"path": str(path), "keys": len(table.entries),
                                **{key: table.provenance.get(key) for key in keep}}
    return tables


def run_period(results: dict[str, Any]) -> str:
    period = results.get("units_finished")
    if not period:
        return "(no units)"
    return f"{period[0][:16].replace('T', ' ')} to {period[1][:16].replace('T', ' ')}"


def collect_results(state: dict[str, Any], settings: StudySettings, search_data: str, train_data: str,
                    data: str, jobs: int) -> dict[str, Any]:
    """Everything the report needs, from the state alone (a rerun renders the same report)."""
    units = state["units"]

    def result(name: str) -> Any:
        return units[name]["result"]

    trainings = {name[len("train/"):]: entry["result"] for name, entry in units.items()
                 if name.startswith("train/")}
    finished = [entry["finished"] for entry in units.values()]
    searches = {job.name: result(f"search/{job.name}") for job in SEARCHES}
    cross: dict[str, dict[str, Any]] = {}
    for job in SEARCHES:
        row: dict[str, Any] = {}
        for backend in CROSS_BACKENDS:
            passes = [result(f"measure/{job.name}/{backend}/{k}") for k in range(settings.cross_passes)]
            row[backend] = {"median": statistics.median(p["median"] for p in passes),
                            "passes": [p["median"] for p in passes], "command": passes[0]["command"]}
        space = study_space()
        from proxylessnas import Arch

        arch = Arch.from_ops(space, [searches[job.name]["choices"][layer.label]
                                     for layer in space.searched_layers])
        macs, params = macs_params(space, arch)
        row["macs_m"], row["params_m"] = macs, params
        cross[job.name] = row
    matching = {search: result(f"match/{search}") for search in MATCHED}
    item3 = {}
    for search in MATCHED:
        match = matching[search]
        rows = []
        for name, net in match["nets"].items():
            training = trainings.get(search if name == "searched" else name)
            kind = "searched" if name == "searched" else ("mobilenet_v2" if name == match["mobilenet_v2"]
                                                          else "random")
            rows.append({"name": search if name == "searched" else name, "kind": kind,
                         "latency_ms": net["latency_ms"], "p10": net["p10"], "p90": net["p90"],
                         "gap": relative_gap(net["latency_ms"], match["nets"]["searched"]["latency_ms"]),
                         "macs_m": net["macs_m"], "params_m": net["params_m"],
                         "test_top1": training["test_top1"] if training else None,
                         "test_top5": training["test_top5"] if training else None})
        accuracies = {r["name"]: r["test_top1"] for r in rows if r["test_top1"] is not None}
        ranks = rank_descending(accuracies) if accuracies else {}
        for r in rows:
            r["rank"] = ranks.get(r["name"])
        item3[search] = {"target_ms": requested_target(searches[search]), "rows": rows,
                         "final_entropy": searches[search].get("final_entropy"),
                         "uniform_entropy": searches[search].get("uniform_entropy"),
                         "searched_is_most_accurate": ranks.get(search) == 1 if ranks else None}
    seed_runs = ["cpu-low", *(f"cpu-low-seed{seed}" for seed in settings.noise_seeds)]
    noise = [trainings[name]["test_top1"] for name in seed_runs if name in trainings]
    return {
        "study": "CIFAR-10 study (issue 8, items 3-5)", "mode": settings.mode,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
        "settings": asdict(settings), "data": {"spec": data, "search": search_data, "train": train_data},
        "latency_tables": latency_tables(),
        "parallel_trainings": jobs, "searches": searches, "matching": matching, "cross": cross,
        "trainings": trainings, "item3": item3,
        "seed_spread": {"seeds": [0, *settings.noise_seeds], "test_top1": noise,
                        "range": (max(noise) - min(noise)) if len(noise) > 1 else None},
        "unit_seconds": {name: entry["seconds"] for name, entry in units.items()},
        "units_finished": [min(finished), max(finished)] if finished else None,
        "unit_commits": sorted({e.get("commit") or "not recorded" for e in units.values()}),
        "commands": state["commands"],
    }


# ----------------------------------------------------------------------------- figures

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
    from proxylessnas import Arch
    from proxylessnas.figures import new_figure, save_figure
    from proxylessnas.viz import draw_architecture

    space = study_space()
    figure = new_figure(11, 3.6 * len(SPECIALISED))
    axes = figure.subplots(len(SPECIALISED), 1, squeeze=False)[:, 0]
    figure.subplots_adjust(hspace=0.55)  # room for each row's legend below it
    for ax, name in zip(axes, SPECIALISED):
        search = results["searches"][name]
        arch = Arch.from_ops(space, [search["choices"][layer.label] for layer in space.searched_layers])
        draw_architecture(ax, space, arch)
        cross = results["cross"][name]
        ax.set_title(f"searched for {search['job']['hardware']} (T = {requested_target(search):.3g} "
                     f"{search['unit']}): torch {cross['torch']['median']:.3f} ms, ONNX Runtime "
                     f"{cross['onnxruntime']['median']:.3f} ms, {cross['macs_m']:.2f} MMACs", fontsize=9)
    return save_figure(figure, path)


# ----------------------------------------------------------------------------- markdown

def _top1(trainings: dict[str, Any], name: str) -> str:
    return f"{trainings[name]['test_top1']:.2f}" if name in trainings else "-"


def render_markdown(results: dict[str, Any]) -> str:
    """The fragment for docs/RESULTS.md: data, budget, tables, commands and readings."""
    s = results["settings"]
    m = results["machine"]
    mode_note = ("**Quick mode: a plumbing check (tiny data, 1 epoch, fast latency tables); the numbers "
                 "below say nothing about the methods.**\n\n" if s["mode"] == "quick" else "")
    weight_steps = (s["search_warmup_epochs"] + s["search_epochs"]) * s["search_steps_per_epoch"]
    spread = results["seed_spread"]
    lines = [
        f"## CIFAR-10 study ({s['mode']} mode)", "", *([mode_note.rstrip(), ""] if mode_note else []),
        f"Units finished {run_period(results)} UTC on {m['cpu']} ({m['cores']} cores), torch "
        f"{m['torch']}, ONNX Runtime {m['onnxruntime']}, proxylessnas {m['proxylessnas']} (units run at "
        f"commit {', '.join(results.get('unit_commits') or ['not recorded'])}; report written at commit "
        f"{m['commit']}, {results['date'][:16].replace('T', ' ')} UTC); "
        f"`python benchmarks/study_cifar.py --{s['mode']}`.",
        "",
        "- **Data**: CIFAR-10 as the JPEG (quality 75) copy in `../shared/data/cifar10` (an image-folder "
        "tree), not the original PNG/pickle release; JPEG artefacts cost some accuracy. Searches: "
        f"{s['search_limit_per_class']} images per class "
        f"({10 * s['search_limit_per_class'] - s['search_valid_size']} for the weights, "
        f"{s['search_valid_size']} for the architecture steps) and at most that many "
        f"test images per class. Trainings: {s['train_limit_per_class']} training and "
        f"{min(1000, s['train_limit_per_class'])} test images per class.",
        f"- **Training budget** (identical for every net): {s['train_epochs']} epoch(s), batch "
        f"{s['train_batch_size']}, the CIFAR recipe (SGD Nesterov, lr 0.1, 1 warm-up epoch then cosine, "
        "label smoothing 0.1, weight decay 5e-4), from scratch, seed 0; the number reported is the "
        "**last epoch's** test top-1. One torch thread per process; trainings run "
        f"{results['parallel_trainings']} at a time.",
        f"- **Searches**: space `proxyless-cifar` at width 0.5, depths (2, 2, 2, 2, 2, 1) (11 searched "
        f"blocks); {s['search_warmup_epochs']} warm-up + {s['search_epochs']} search epoch(s) of "
        f"{s['search_steps_per_epoch']} weight steps (batch {s['search_batch_size']}; {weight_steps} "
        f"weight steps), band mode (+-5 %), {s['search_calibration_nets']} calibration nets, seed 0, one "
        "thread. Latency: torch eager, CPU, batch 1, one thread, thread-CPU clock. Tables: "
        + "; ".join(f"{name} {t['keys']} blocks, built {str(t['date'])[:16]} "
                    f"({(t.get('method') or {}).get('seconds_per_key', '?')} s per block)"
                    for name, t in results.get("latency_tables", {}).items()) + ".",
        "",
    ]
    lines += _item3_markdown(results)
    lines += _item4_markdown(results)
    lines += _item5_markdown(results)
    if spread["range"] is not None:
        lines += [f"Seed-to-seed spread of one net (the low searched net trained with seeds "
                  f"{', '.join(map(str, spread['seeds']))}): top-1 "
                  f"{', '.join(f'{v:.2f}' for v in spread['test_top1'])} %, range {spread['range']:.2f} "
                  "points: accuracy gaps smaller than this are noise.", ""]
    lines += ["### Commands", "", "```"]
    lines += [entry["command"] for entry in results["commands"]
              if not entry["unit"].startswith("measure-") or entry["unit"].endswith("-0")]
    lines += ["```", "", f"(`latency measure` passes 1..{s['cross_passes'] - 1} repeat pass 0's commands "
              "with other `--json` files; the matching sessions and MACs use the Python API, see "
              "`benchmarks/study_cifar.py`.)" if s["cross_passes"] > 1 else "", ""]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def _item3_markdown(results: dict[str, Any]) -> list[str]:
    lines = ["### Accuracy at equal latency (item 3)", "",
             "Each searched net (gradient, `full_v2`) against the MobileNetV2 net whose measured latency is "
             "closest, of two families on a grid of width multipliers: `mobilenet_v2_w<w>`, the zoo net's "
             "CIFAR-size variant (stride-1 stem; the fixed k3 e1 block, then 16 k3 e6 blocks in stages of "
             "2-3-4-3-3-1), and `mbv2_k3e6_w<w>`, MobileNetV2's block (k3 e6) in all 11 searched blocks "
             "of the study backbone (stages of 2-2-2-2-2-1; the study space itself is width 0.5), "
             f"and against {results['settings']['random_nets']} random architectures of the study space "
             "measured within +-5 % of it. The random ones are drawn with per-layer probabilities "
             "q(op) ~ exp(-beta * table cost of op), beta solved so that the expected table cost is the "
             "searched net's (every architecture of one total cost is then equally likely; beta = 0 is "
             "uniform sampling, which finds almost none far from the space's typical cost), kept within "
             f"+-{results['settings']['random_prefilter']:.0%} of its table cost, timed with it in "
             "random order; the first ones within +-5 % are trained. Latencies: medians from one "
             "interleaved session of the nets of a table (a confirmation session after the matching one).",
             ""]
    spread = results["seed_spread"]["range"]
    for search, item in results["item3"].items():
        match = results["matching"][search]
        lines += [f"**Target {item['target_ms']:.3g} ms** (`{search}`): MobileNetV2 nets timed with the "
                  f"searched one ({match['searched_latency_first_session']:.2f} ms there): "
                  + ", ".join(f"{name} {latency:.2f}" for name, latency in match["baseline_latency"].items())
                  + f" ms; {match['candidates_timed']} random candidates timed (of {match['pool_size']} in "
                  f"the table window; beta {match.get('tilt_beta', 0.0):.2f} per ms).", ""]
        rows = sorted(item["rows"], key=lambda r: -(r["test_top1"] or -1))
        table = [[f"**{r['name']}**" if r["kind"] == "searched" else r["name"], r["kind"],
                  f"{r['latency_ms']:.3f} ({r['p10']:.2f}-{r['p90']:.2f})", f"{100 * r['gap']:+.1f} %",
                  f"{r['macs_m']:.2f}", f"{r['params_m']:.3f}",
                  "-" if r["test_top1"] is None else f"{r['test_top1']:.2f}",
                  "-" if r["test_top5"] is None else f"{r['test_top5']:.2f}", r["rank"] or "-"]
                 for r in rows]
        lines += [markdown_table(["net", "kind", "latency ms (p10-p90)", "vs searched", "MMACs", "M params",
                                  "top-1 %", "top-5 %", "rank"], table), ""]
        verdict = _item3_verdict(item, spread)
        lines += [verdict, ""]
    lines += ["![accuracy vs latency](accuracy_vs_latency.png)", ""]
    return lines


def _item3_verdict(item: dict[str, Any], spread: float | None) -> str:
    rows = [r for r in item["rows"] if r["test_top1"] is not None]
    if not rows:
        return "Reading: not trained yet."
    searched = next(r for r in rows if r["kind"] == "searched")
    others = [r for r in rows if r["kind"] != "searched"]
    best_other = max(others, key=lambda r: r["test_top1"])
    margin = searched["test_top1"] - best_other["test_top1"]
    unmatched = [r["name"] for r in item["rows"] if abs(r["gap"]) > 0.05]
    text = (f"Reading: the searched net ranks {searched['rank']} of {len(rows)} "
            f"({searched['test_top1']:.2f} % against the best other, {best_other['name']}, "
            f"{best_other['test_top1']:.2f} %: {margin:+.2f} points).")
    if spread is not None:
        text += (f" The seed-to-seed range of one net is {spread:.2f} points, so the gap is "
                 + ("larger than seed noise." if abs(margin) > spread else "within seed noise."))
    if item.get("final_entropy") is not None:
        text += (f" The search ended at entropy {item['final_entropy']:.2f} of the architecture distribution "
                 f"(uniform: {item['uniform_entropy']:.2f})"
                 + (": the probabilities barely left uniform, so the derived net owes more to the "
                    "latency band than to learned accuracy preferences."
                    if item["final_entropy"] > 0.9 * item["uniform_entropy"] else "."))
    if item["searched_is_most_accurate"]:
        text += " The claim (most accurate at equal latency) holds here."
    else:
        text += (" The claim (most accurate at equal latency) does **not** hold here. Likely causes: "
                 f"{best_other['name']} has {best_other['macs_m'] / searched['macs_m']:.2f}x the searched "
                 f"net's MACs and {best_other['params_m'] / searched['params_m']:.2f}x its parameters at "
                 "this latency (eager batch-1 latency here is dominated by per-block overhead, not MACs, "
                 "and the search trades accuracy for latency only through a short supernet training); "
                 "the search is short (a few hundred weight steps on a few thousand images), and the "
                 "training budget is short too, so nets of equal latency are ranked by how fast they "
                 "learn early, with one seed.")
    if unmatched:
        text += (f" Not matched within +-5 % in the confirmation session: {', '.join(unmatched)} "
                 "(session-to-session noise; see the p10-p90 column).")
    off_target = searched["latency_ms"] / item["target_ms"] - 1
    if abs(off_target) > 0.05:
        text += (f" In this session the searched net measured {searched['latency_ms']:.2f} ms, "
                 f"{100 * off_target:+.0f} % from its T: T in ms comes from the search's calibration "
                 "session, and this machine's speed moves by 10 % and more between sessions minutes apart "
                 "(searches with `latency.gauge`, the default since this run, keep the calibration "
                 "session's speed scale up to their final measurement).")
    return text


def _item4_markdown(results: dict[str, Any]) -> list[str]:
    searches, cross, trainings = results["searches"], results["cross"], results["trainings"]
    columns = {"torch": "torch eager CPU (ms)", "onnxruntime": "ONNX Runtime CPU (ms)", "macs_m": "MMACs"}
    best = {key: min(SPECIALISED, key=lambda n: _cross_value(cross[n], key)) for key in columns}
    rows = []
    for name in SPECIALISED:
        search = searches[name]
        cells = [f"`{search['job']['hardware']}` (T = {requested_target(search):.3g} {search['unit']})"]
        for key in columns:
            value = _cross_value(cross[name], key)
            text = f"{value:.2f}" if key == "macs_m" else f"{value:.3f}"
            cells.append(f"**{text}**" if best[key] == name else text)
        blocks, kernel, expand = arch_character(search["choices"])
        cells += [f"{cross[name]['params_m']:.3f}", f"{blocks} / {kernel:.1f} / {expand:.1f}",
                  _top1(trainings, name)]
        rows.append(cells)
    own = {"cpu-low": "torch", "onnxruntime-low": "onnxruntime", "flops-low": "macs_m"}
    wins = [name for name in SPECIALISED if best[own[name]] == name]
    pairs = [(a, b) for i, a in enumerate(SPECIALISED) for b in SPECIALISED[i + 1:]]
    differ = ", ".join(f"{a} vs {b}: {ops_differ(searches[a]['choices'], searches[b]['choices'])}"
                       for a, b in pairs)
    position = results["settings"]["target_positions"][0]
    lines = ["### Hardware specialisation (item 4)", "",
             f"Three searches at the same relative target ({position:.0%} of the way from the cheapest to "
             "the most expensive net of each cost model): torch eager CPU (`--hardware cpu`), ONNX Runtime "
             "CPU (`--hardware onnxruntime`), MACs (`--hardware flops`). Each found net measured on every "
             "target (`proxyless latency measure`, median over "
             f"{results['settings']['cross_passes']} pass(es); MACs analytic) and trained with the budget "
             "above. Bold: the best (lowest) in each column.", "",
             markdown_table(["searched for", *columns.values(), "M params",
                             "blocks kept / mean kernel / mean expand", "top-1 %"], rows), "",
             f"Blocks (of 11) that differ: {differ}.", "",
             _item4_verdict(wins, searches), "",
             "![architectures found per target](specialisation_diagrams.png)", ""]
    return lines


def _item4_verdict(wins: list[str], searches: dict[str, Any]) -> str:
    """Do the specialised nets differ, and does each win on its own target?"""
    identical = [(a, b) for i, a in enumerate(SPECIALISED) for b in SPECIALISED[i + 1:]
                 if ops_differ(searches[a]["choices"], searches[b]["choices"]) == 0]
    text = "Reading: " + ("the three searches found three different nets. " if not identical else
                          "identical nets for " + ", ".join(f"{a} and {b}" for a, b in identical) + ". ")
    if len(wins) == len(SPECIALISED):
        return text + "Each specialised net is the cheapest on its own target, as the paper reports."
    text += (f"{len(wins)} of {len(SPECIALISED)} nets are the cheapest on their own target"
             + (f" ({', '.join(wins)})" if wins else "") + ". ")
    return text + ("This departs from the paper. Likely causes: every search lands inside +-5 % of its own "
                   "T, so a net is not pushed below the others' latency on its target, only to its own T; "
                   "targets set at the same relative position of different cost models need not be equally "
                   "hard; and one latency measurement here varies by several per cent between sessions.")


def _cross_value(row: dict[str, Any], key: str) -> float:
    return row[key] if key == "macs_m" else row[key]["median"]


def _item5_markdown(results: dict[str, Any]) -> list[str]:
    searches, cross, trainings = results["searches"], results["cross"], results["trainings"]
    labels = {"cpu-low": "gradient, `full_v2`", "cpu-low-two": "gradient, `two`",
              "cpu-low-reinforce": "REINFORCE (8 samples per update, 1 update per 5 weight steps)"}
    rows = []
    for name in STRATEGY_RUNS:
        search = searches[name]
        within = search["measured_within_tolerance"]
        rows.append([labels[name], search["weight_steps"], duration(search["wall_seconds"])
                     + (" (resumed)" if search["resumed"] else ""),
                     f"{requested_target(search):.3f}", f"{search['measured_latency']:.3f}",
                     "yes" if within else "no", f"{cross[name]['torch']['median']:.3f}",
                     f"{100 * search['test_accuracy']:.2f}", _top1(trainings, name),
                     "-" if search.get("final_entropy") is None
                     else f"{search['final_entropy']:.2f} / {search['uniform_entropy']:.2f}"])
    # a resumed search's clock covers only its last part: not comparable
    times = {name: searches[name]["wall_seconds"] for name in STRATEGY_RUNS if not searches[name]["resumed"]}
    accuracies = {name: trainings[name]["test_top1"] for name in STRATEGY_RUNS if name in trainings}
    best = max(accuracies, key=accuracies.get) if accuracies else None
    fastest = min(times, key=times.get) if times else None
    fastest_text = f"{labels[fastest]} ({duration(times[fastest])})" if fastest else "-"
    if len(times) < len(STRATEGY_RUNS):
        fastest_text += " among the searches not resumed"
    return ["### Gradient against REINFORCE (item 5)", "",
            "Same target position, run as a user would run each strategy (each search's own "
            "calibration turns the position into T in ms, so T differs by the calibration noise), "
            "data, space and number of weight steps; gradient runs take one architecture "
            "step per weight step, REINFORCE one per 5 (each scoring 8 sampled architectures). Search "
            "wall time from the study's clock (the whole `proxyless search` process: data, calibration, "
            "search, final selection, BN recalibration, test, plots).", "",
            markdown_table(["strategy", "weight steps", "search wall time", "T (ms)",
                            "measured at the end of the search (ms)", "within +-5 %",
                            "measured again (ms)", "inherited-weights top-1 %", "trained top-1 %",
                            "final entropy / uniform"], rows), "",
            f"Reading: fastest search: {fastest_text}; most accurate after "
            f"training: {labels[best] + f' ({accuracies[best]:.2f} %)' if best else '-'}. The paper "
            "presents the gradient method as the memory-efficient way to search; its authors later said "
            "their main results came from the REINFORCE variant, the plain gradient with a latency "
            "penalty being slightly worse. With one seed and a short budget, accuracy differences within "
            "the seed spread below are not evidence either way.", ""]


# ----------------------------------------------------------------------------- command line

def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny data, 1 epoch: checks the plumbing")
    mode.add_argument("--full", action="store_true", help="the published numbers (default)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default runs/study-<mode>)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 spec (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings in parallel, one thread each")
    parser.add_argument("--report-only", action="store_true", help="only render the results from the state")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from proxylessnas.errors import ProxylessError

    args = parse_arguments(argv)
    settings = QUICK if args.quick else FULL
    work = args.work or REPO / "runs" / f"study-{settings.mode}"
    try:
        data = args.data if args.data == DEFAULT_DATA else repository_relative(args.data, Path.cwd())
        folder = dataset_folder(data)
        if folder is None or not (REPO / folder).is_dir():
            raise ProxylessError("CIFAR-10 folder not found", args.data,
                                 "pass --data cifar10:DIR (the JPEG copy lives in ../shared/data/cifar10)")
        if args.jobs < 1:
            raise ProxylessError("--jobs must be at least 1", "--jobs", "give --jobs 1 or 2")
        study = Study(settings, work.resolve(), data, args.jobs)

        def stop(signal_number, frame):  # noqa: ARG001
            study.log(f"stopping on {signal.Signals(signal_number).name}: rerun the same command to continue")
            study.stop_children()
            raise KeyboardInterrupt

        # the children run in their own sessions (a terminal's Ctrl-C reaches only this process):
        # each gets exactly one SIGTERM, checkpoints and exits
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        study.log(f"{settings.mode} study in {work}; data {data}")
        if args.report_only:
            study.report()
        else:
            study.run()
        study.log("finished")
        return 0
    except ProxylessError as error:
        print(error.line(), file=sys.stderr)
        return 2
    except UnitFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
