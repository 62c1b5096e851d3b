"""What sizes the study (one :class:`StudySettings` per mode) and what it searches."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results" / "study"
DEFAULT_DATA = "cifar10:../shared/data/cifar10"  # relative to the repository (the commands run there)
SEARCH_CONFIG = "cifar10"  # the shipped recipe every search starts from
SPACE_ARGS = ("space.width_mult=0.5", "space.depths=[2,2,2,2,2,1]")
STATE_VERSION = 1


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
    arch_args: tuple[str, ...] = ("arch.lr=0.01",)  # architecture settings every search overrides
    paired_seeds: tuple[int, ...] = ()  # paired mode: seeds of the searched net and its best random rival


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


# Paired mode (issue 16, part 4): the demo's converged architecture settings (docs/search.md,
# "Why the demo did not converge": 280 steps at lr 0.05, the pair-wise mode, entropy term 0.1) on
# the study's data; each searched net and the best of its random rivals trained with 3 seeds.
PAIRED_ARCH_ARGS = ("arch.lr=0.05", "arch.entropy_weight=0.1")

PAIRED = replace(
    FULL, mode="paired", search_steps_per_epoch=35, search_warmup_epochs=4, search_epochs=8,
    zoo_widths=(0.25,), backbone_widths=(0.25,), cross_passes=0, cross_rounds=0, noise_seeds=(),
    arch_args=PAIRED_ARCH_ARGS, paired_seeds=(0, 1, 2))

PAIRED_QUICK = replace(
    QUICK, mode="paired-quick", backbone_widths=(0.25,), cross_passes=0, cross_rounds=0,
    arch_args=PAIRED_ARCH_ARGS, paired_seeds=(0, 1))


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
PAIRED_SEARCHES = (SearchJob("cpu-low", "cpu", "low", binary_mode="two"),
                   SearchJob("cpu-high", "cpu", "high", binary_mode="two"))
CROSS_BACKENDS = ("torch", "onnxruntime")
