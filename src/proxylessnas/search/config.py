"""``SearchConfig``: every setting of a search, in sections that own their defaults.

A recipe is a YAML file with the same sections (``data``, ``space``, ``hardware``, ``weights``,
``arch``, ``latency``, ``reinforce``, ``search``, ``run``); ``key=value`` overrides name a field
as ``section.field`` (``arch.lr=3e-4``, ``search.epochs=20``). Every key is checked against
the dataclass fields and every value against the field's type: an unknown key or a bad value
is a :class:`~proxylessnas.errors.ProxylessError`, never ignored. ``space`` accepts, besides
``name``, the keyword overrides of the named preset (``space.width_mult=0.5``), checked by
:func:`~proxylessnas.space.get_space` when the run starts.

Recipes shipped with the package live in ``proxylessnas/configs``; ``load_config("demo")``
reads ``configs/demo.yaml``, ``load_config("my.yaml")`` reads a file.

Defaults are the paper's search settings (PAPER.md section 4) scaled to small images: the
ImageNet recipes restore the paper's numbers (batch 256, 40 + 120 epochs).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from proxylessnas.arguments import (
    Kind,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    rate,
    resolution,
    seed,
    unit_interval,
)
from proxylessnas.errors import ProxylessError
from proxylessnas.overrides import convert, parse_overrides
from proxylessnas.runtime.atomic import atomic_write
from proxylessnas.supernet.base import MIXED_OPS, WEIGHT_PATHS
from proxylessnas.supernet.gate import MODES as BINARY_MODES

STRATEGIES = ("gradient", "reinforce")  # search.strategies.make_strategy builds each
LATENCY_MODES = ("penalty", "band", "under")


@dataclass(frozen=True)
class DataSection:
    """Where the images come from and how they are batched."""

    dataset: str = "demo"
    valid_size: float = 0.1  # architecture-validation split: a fraction (< 1) or a count (>= 1)
    batch_size: int = 64  # weight steps
    valid_batch_size: int = 64  # architecture steps
    eval_batch_size: int = 256
    augment: bool = True  # random crop with padding (+ flip where the dataset allows it)
    limit_per_class: int | None = None  # keep the first N images per class (quick runs)
    resolution: int | None = None  # resize the images (None: the dataset's own size)


@dataclass(frozen=True)
class SpaceSection:
    """The search space preset and its keyword overrides (classes, resolution and input
    channels always come from the dataset)."""

    name: str = "proxyless-cifar"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HardwareSection:
    """The cost model: ``cpu``, ``cuda``, a CPU runtime (``onnxruntime``, ``onnxruntime-int8``,
    ``openvino``, ``openvino-int8``, ``executorch``, ``executorch-int8``), ``flops`` or a table
    file. ``batch_size`` and ``threads`` are part of the targeted setting: a table measured with
    others, or with another runtime version or CPU, is refused unless ``allow_mismatch``."""

    target: str = "cpu"
    batch_size: int = 1
    threads: int | None = 1
    measure_runs: int = 50  # timed runs at least of each whole net (measured targets)
    seconds_per_net: float = 0.4  # timing budget of each whole net in a session (measured targets)
    allow_mismatch: bool = False


@dataclass(frozen=True)
class WeightsSection:
    """SGD on the supernet weights (paper: Nesterov 0.9, wd 4e-5, label smoothing 0.1)."""

    lr: float = 0.025
    warmup_lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    grad_clip_norm: float = 5.0  # 0 disables clipping


@dataclass(frozen=True)
class ArchSection:
    """Adam on the architecture logits (paper: lr 1e-3, betas (0, 0.999), alpha ~ N(0, 1e-3))."""

    lr: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    init_std: float = 1e-3
    update_every: int = 5  # one architecture step every N weight steps
    # beta: sum over decisions of H(p_d) / ln K_d added to the architecture loss with a weight
    # that ramps linearly from 0 to beta over the search epochs (0: off, the paper's loss)
    entropy_weight: float = 0.0
    skip_first_epoch: bool = True  # no architecture step in the first epoch after warm-up


@dataclass(frozen=True)
class LatencySection:
    """How latency enters the architecture loss.

    ``mode``: ``penalty`` adds the soft loss ``loss`` (mul_log, add_linear, paper, absolute,
    hinge) with reference latency T; ``band`` lands the derived architecture within
    ``tolerance`` of T and ``under`` at or below T, both by dual ascent on lambda.
    ``calibrate=N`` (band / under on measured hardware) times N whole architectures spread over
    the space's latency range before the search and aims the controller at the table value
    that corresponds to the measured T (fit ``measured = slope * predicted + intercept``).
    ``gauge=N`` times N fixed reference nets in every such session (calibration, final
    selection, final measurement) and divides each session's timings by its speed factor
    against the calibration session, so that a change of the machine's speed in between does
    not move the target (0: raw timings; None: 2, except 0 on OpenVINO FP32, whose gauge nets were
    seen reading 35-37 % off the nets timed beside them, docs/latency.md).
    T is ``target`` (in the cost model's unit) or, when None, the point ``target_position``
    of the way from the cheapest (0) to the most expensive (1) architecture of the space.
    """

    mode: str = "band"
    target: float | None = None
    target_position: float = 0.5
    loss: str = "mul_log"
    loss_params: dict[str, float] = field(default_factory=dict)
    tolerance: float = 0.05
    calibrate: int = 0  # band/under on measured hardware: whole nets timed to map table sums to latency
    gauge: int | None = None  # reference nets timed in every whole-net session (None: per runtime)
    step_size: float = 0.1
    # what drives the dual ascent on lambda: the argmax architecture's cost, or E[LAT]
    controller_cost: str = "argmax"
    initial_weight: float = 0.1
    max_weight: float = 100.0


@dataclass(frozen=True)
class ReinforceSection:
    """REINFORCE (PAPER.md section 3): B sampled archs, reward ACC * (T / LAT)^w."""

    samples: int = 10
    reward_exponent: float = 0.1
    baseline_decay: float = 0.9


@dataclass(frozen=True)
class SearchSection:
    """The algorithm and its length."""

    strategy: str = "gradient"
    binary_mode: str = "full_v2"
    # how the supernet mixes candidates: binary gates (ProxylessNAS), or the baselines darts
    # (softmax-weighted sum of every candidate) and gumbel (FBNet); the baselines ignore binary_mode
    mixed_op: str = "binary"
    warmup_epochs: int = 2
    epochs: int = 6
    steps_per_epoch: int | None = None  # cap on weight steps per epoch (None: the whole split)
    # the paths of the weight steps: drawn from the architecture distribution p (the paper), or
    # uniformly (binary gates; every candidate keeps training alike while p sharpens)
    weight_paths: str = "distribution"


@dataclass(frozen=True)
class RunSection:
    """Where and how the run executes; none of this changes the result."""

    out: str = "runs/search"
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | auto
    threads: int | None = None  # torch CPU threads for the search (None: torch's default)
    progress: bool = True
    plots: bool = True
    eval_batches: int = 10  # validation batches for the per-epoch accuracy of the argmax arch
    bn_recalibration_batches: int = 20
    # under torchrun (docs/distributed.md): SyncBatchNorm over all ranks (GPUs) instead of per-rank
    # statistics, and the seconds a collective may wait for a lost rank before the job stops
    sync_batchnorm: bool = False
    distributed_timeout: float = 1800.0


SECTIONS: dict[str, type] = {
    "data": DataSection, "space": SpaceSection, "hardware": HardwareSection,
    "weights": WeightsSection, "arch": ArchSection, "latency": LatencySection,
    "reinforce": ReinforceSection, "search": SearchSection, "run": RunSection,
}
RESULT_FREE_SECTIONS = ("run",)  # may differ between a run and its resume ...
RESULT_FIELDS_OF_FREE_SECTIONS = ("run.seed",)  # ... except these (the seed draws the data split)
# may change on a resume (recorded in the run's config history): they do not change the run's shape
RESUMABLE_FIELDS = frozenset({f"weights.{f.name}" for f in fields(WeightsSection)} | {
    "arch.lr", "arch.beta1", "arch.beta2", "arch.eps", "arch.weight_decay", "arch.entropy_weight"})


@dataclass(frozen=True)
class SearchConfig:
    """All settings of one search; build with :func:`load_config` or ``SearchConfig()``."""

    data: DataSection = DataSection()
    space: SpaceSection = SpaceSection()
    hardware: HardwareSection = HardwareSection()
    weights: WeightsSection = WeightsSection()
    arch: ArchSection = ArchSection()
    latency: LatencySection = LatencySection()
    reinforce: ReinforceSection = ReinforceSection()
    search: SearchSection = SearchSection()
    run: RunSection = RunSection()

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> SearchConfig:
        """Build from nested dicts; unknown sections or keys, ill-typed values and an empty file
        (``data`` None) are errors."""
        if data is None:
            raise ProxylessError("the config is empty", where,
                                 f"write its sections ({', '.join(SECTIONS)}), or give a shipped recipe")
        if not isinstance(data, dict):
            raise ProxylessError("a search config must be a mapping of sections", where,
                                 f"write sections {', '.join(SECTIONS)}")
        return cls().merged(data, where)

    def merged(self, data: dict[str, Any], where: str = "config") -> SearchConfig:
        """A copy with the nested ``{section: {field: value}}`` values applied."""
        sections = {}
        for name, values in data.items():
            if name not in SECTIONS:
                raise ProxylessError(f"unknown config section '{name}'", where,
                                     f"use one of {', '.join(SECTIONS)}")
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ProxylessError(f"config section '{name}' must be a mapping", where,
                                     f"write '{name}:' followed by indented key: value lines")
            sections[name] = _merge_section(getattr(self, name), name, values, where)
        return replace(self, **sections)

    def with_overrides(self, items: list[str] | dict[str, Any], where: str = "overrides") -> SearchConfig:
        """Apply ``["section.field=value", ...]`` (values parsed as YAML scalars)."""
        pairs = parse_overrides(items) if isinstance(items, list) else dict(items)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in pairs.items():
            section, dot, name = key.partition(".")
            if not dot or not name:
                raise ProxylessError(f"override key '{key}' is not section.field", where,
                                     f"write e.g. search.epochs=10 (sections: {', '.join(SECTIONS)})")
            nested.setdefault(section, {})[name] = value
        return self.merged(nested, where)

    def flat(self, ignore: tuple[str, ...] = RESULT_FREE_SECTIONS) -> dict[str, Any]:
        """``{"section.field": value}`` (sections in ``ignore`` skipped but for
        ``RESULT_FIELDS_OF_FREE_SECTIONS``), to compare two configs."""
        return {f"{section}.{key}": value for section, values in self.to_dict().items()
                for key, value in values.items()
                if section not in ignore or f"{section}.{key}" in RESULT_FIELDS_OF_FREE_SECTIONS}

    def inert_sections(self) -> tuple[str, ...]:
        """Sections this run never reads: ``reinforce`` unless the strategy is REINFORCE."""
        return () if self.search.strategy == "reinforce" else ("reinforce",)

    def hardware_term_note(self) -> str | None:
        """A plain-words note where the strategy that runs prices hardware differently from the
        latency settings: REINFORCE's reward ``ACC * (T / LAT)^w`` ignores ``latency.loss_params``."""
        if self.search.strategy != "reinforce" or self.latency.mode != "penalty":
            return None
        weight = self.latency.loss_params.get("weight")
        w = self.reinforce.reward_exponent
        if weight == 0 and w > 0:
            return (f"the latency loss weight is 0, but REINFORCE rewards ACC * (T / LAT)^{w:g}, which still "
                    "favours cheaper nets: set reinforce.reward_exponent=0 for an accuracy-only search")
        if weight is not None and weight > 0 and w == 0:
            return ("REINFORCE ignores latency.loss_params (its reward ACC * (T / LAT)^w has w = 0): "
                    "set reinforce.reward_exponent > 0 (e.g. 0.1) for a latency-aware search")
        return None

    def resume_settings(self) -> dict[str, Any]:
        """:meth:`flat` without the sections the run never reads: a resume compares these."""
        return self.flat(RESULT_FREE_SECTIONS + self.inert_sections())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the resolved config as YAML (atomic)."""
        return atomic_write(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def _merge_section(section: Any, name: str, values: dict[str, Any], where: str) -> Any:
    kinds = {f.name: f.type for f in fields(section)}
    hints = typing.get_type_hints(type(section))
    clean: dict[str, Any] = {}
    for key, value in values.items():
        key = str(key)
        if name == "space" and key not in kinds:
            # a preset keyword (width_mult, depths...): checked by get_space at run time
            clean.setdefault("options", dict(section.options))[key] = value
            continue
        if key not in kinds:
            raise ProxylessError(f"unknown config key '{name}.{key}'", where,
                                 f"use any of {', '.join(f'{name}.{k}' for k in kinds)}")
        clean[key] = _coerce(value, hints[key], f"{name}.{key}", where)
    return replace(section, **clean)


def _coerce(value: Any, kind: Any, key: str, where: str) -> Any:
    """``value`` converted to the type hint ``kind`` (:func:`~proxylessnas.overrides.convert`, the
    same conversion as the training recipe's overrides)."""
    try:
        return convert(value, kind)
    except ValueError:
        raise ProxylessError(f"bad value {value!r} for {key}", where,
                             f"give a value of type {_type_name(kind)}") from None


def _type_name(kind: Any) -> str:
    """``int`` for ``int`` and ``int | None``, ``dict`` for ``dict[str, float]``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    return getattr(kind, "__name__", str(kind))


FIELD_KINDS: dict[str, Kind] = {  # the kind of every numeric field (None passes where the field allows it)
    "data.valid_size": positive_float, "data.batch_size": positive_int,
    "data.valid_batch_size": positive_int, "data.eval_batch_size": positive_int,
    "data.limit_per_class": positive_int, "data.resolution": resolution,
    "hardware.batch_size": positive_int, "hardware.threads": positive_int,
    "hardware.measure_runs": positive_int, "hardware.seconds_per_net": positive_float,
    "weights.lr": positive_float, "weights.warmup_lr": positive_float, "weights.momentum": rate,
    "weights.weight_decay": non_negative_float, "weights.label_smoothing": rate,
    "weights.grad_clip_norm": non_negative_float,
    "arch.lr": positive_float, "arch.beta1": rate, "arch.beta2": rate, "arch.eps": positive_float,
    "arch.weight_decay": non_negative_float, "arch.init_std": non_negative_float,
    "arch.update_every": positive_int, "arch.entropy_weight": non_negative_float,
    "latency.target": positive_float, "latency.target_position": unit_interval,
    "latency.tolerance": fraction, "latency.calibrate": non_negative_int, "latency.gauge": non_negative_int,
    "latency.step_size": positive_float, "latency.initial_weight": non_negative_float,
    "latency.max_weight": positive_float,
    "reinforce.samples": positive_int, "reinforce.reward_exponent": non_negative_float,
    "reinforce.baseline_decay": rate,
    "search.warmup_epochs": non_negative_int, "search.epochs": positive_int,
    "search.steps_per_epoch": positive_int,
    "run.seed": seed, "run.threads": positive_int, "run.eval_batches": positive_int,
    "run.bn_recalibration_batches": non_negative_int, "run.distributed_timeout": positive_float,
}


def _validate(config: SearchConfig) -> None:
    """Kind, range and choice checks; the first problem found is raised."""
    data, latency, search = config.data, config.latency, config.search
    for key, kind in FIELD_KINDS.items():
        section, _, name = key.partition(".")
        value = getattr(getattr(config, section), name)
        if value is not None and not kind.accepts(value):
            raise ProxylessError(f"invalid value {value!r} for {key}", "search config",
                                 f"give {kind.description}")
    for name, value in latency.loss_params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProxylessError(f"invalid value {value!r} for latency.loss_params.{name}", "search config",
                                 "give a finite number")
    checks = [
        ("search.strategy", search.strategy in STRATEGIES, f"use one of {', '.join(STRATEGIES)}"),
        ("search.binary_mode", search.binary_mode in BINARY_MODES, f"use one of {', '.join(BINARY_MODES)}"),
        ("search.mixed_op", search.mixed_op in MIXED_OPS, f"use one of {', '.join(MIXED_OPS)}"),
        ("search.weight_paths", search.weight_paths in WEIGHT_PATHS, f"use one of {', '.join(WEIGHT_PATHS)}"),
        ("search.weight_paths", search.weight_paths == "distribution" or search.mixed_op == "binary",
         "uniform weight paths need search.mixed_op=binary"),
        ("latency.mode", latency.mode in LATENCY_MODES, f"use one of {', '.join(LATENCY_MODES)}"),
        ("latency.calibrate", latency.calibrate != 1, "give 0 or at least 2"),
        ("latency.controller_cost", latency.controller_cost in ("argmax", "expected"),
         "use argmax or expected"),
        ("data.valid_size", data.valid_size < 1 or data.valid_size == int(data.valid_size),
         "give a fraction in (0, 1) or a whole count"),
        ("run.device", config.run.device in ("cpu", "cuda", "auto"), "use cpu, cuda or auto"),
    ]
    for key, ok, fix in checks:
        if not ok:
            section, _, name = key.partition(".")
            value = getattr(getattr(config, section), name)
            raise ProxylessError(f"invalid value {value!r} for {key}", "search config", fix)


def config_names() -> list[str]:
    """Names of the recipes shipped in ``proxylessnas/configs``."""
    folder = importlib.resources.files("proxylessnas") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def config_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped recipe name (``demo``) or a YAML file path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    bundled = Path(str(importlib.resources.files("proxylessnas") / "configs" / f"{text}.yaml"))
    if "/" not in text and not text.endswith((".yaml", ".yml")) and bundled.is_file():
        return bundled
    if path.exists():
        raise ProxylessError("config is not a file", text, "give a YAML file")
    raise ProxylessError("config not found", text,
                         f"give a YAML file or one of the shipped recipes: {', '.join(config_names())}")


def load_config(name_or_path: str | os.PathLike | None = None,
                overrides: list[str] | None = None) -> SearchConfig:
    """Read a recipe (shipped name or YAML path; None: the built-in defaults) plus overrides."""
    config = SearchConfig()
    if name_or_path is not None:
        path = config_path(name_or_path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise ProxylessError(f"malformed YAML{at}", str(path), "fix the YAML syntax") from None
        except UnicodeDecodeError:
            raise ProxylessError("not a text file", str(path), "give a YAML recipe") from None
        except (ValueError, RecursionError) as err:  # an int of thousands of digits, nesting too deep
            raise ProxylessError(f"YAML beyond the parser's limits ({str(err).splitlines()[0][:80]})",
                                 str(path), "give a YAML recipe") from None
        config = SearchConfig.from_dict(data, str(path))
    if overrides:
        config = config.with_overrides(overrides)
    return config
