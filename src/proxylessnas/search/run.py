"""``run_search``: the whole ProxylessNAS search, one loop read top to bottom.

    warm-up epochs:  weight steps only, one random path per layer (p is ~uniform), cosine LR
                     from ``weights.warmup_lr``
    search epochs:   weight step (one sampled path, CE with label smoothing, SGD Nesterov)
                     and every ``arch.update_every`` weight steps one architecture step of the
                     strategy on a batch of the architecture-validation split (none in the
                     first search epoch when ``arch.skip_first_epoch``), cosine LR from
                     ``weights.lr``
    each epoch end:  metrics.jsonl row, arch.json (+ arches/epoch_NNN.json), checkpoint.pt,
                     plots/
    at the end:      the architecture to derive (argmax, or in a target mode the most
                     probable one inside the band if the argmax misses it), the derived net
                     with inherited weights after BatchNorm recalibration, its test accuracy,
                     predicted and measured latency, summary.json

The run directory (``run.out``) holds everything needed to resume exactly: ``checkpoint.pt``
(written atomically) has the supernet (weights, alphas, BN statistics), both optimisers, the
strategy's and controller's state, the path-sampling generator, every global RNG, the
validation iterator's position, the running epoch sums, (epoch, step) and the config history.
Learning rates are a pure function of (epoch, step), so there is no scheduler state to lose.
SIGINT and SIGTERM finish the current step, write the checkpoint and raise
:class:`SearchInterrupted` (:mod:`proxylessnas.runtime.stopping`); a NaN or infinite loss raises
:class:`~proxylessnas.errors.ProxylessError` saying how to resume with a lower learning rate,
and leaves the last good checkpoint in place. A resume may change the settings that do not
change the run's shape (``RESUMABLE_FIELDS``, :mod:`proxylessnas.runtime.resume_changes`). One process
writes the run directory: rank 0 locks it (:mod:`proxylessnas.runtime.runfolder_lock`) before anything
in it is read or written, and removes the temporary files a killed run left there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from proxylessnas.convergence_measures import argmax_changes, mean_max_probability, normalised_entropy
from proxylessnas.data import BatchIterator, Dataset, load_dataset, split_validation
from proxylessnas.data.iterator import rescale_step
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.validate import SpeedGauge
from proxylessnas.runtime.atomic import atomic_write, write_json_atomic
from proxylessnas.runtime.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from proxylessnas.runtime.devices import resolve_device
from proxylessnas.runtime.distributed import DistributedContext, distributed_session, rank_device
from proxylessnas.runtime.finite import NonFiniteLoss, check_finite
from proxylessnas.runtime.resume_changes import (
    accept_changes,
    describe_changes,
    keeping_hyperparameters,
    lower_rate_advice,
    record_changes,
)
from proxylessnas.runtime.runfolder_lock import hold_run_folder, refuse_earlier_run
from proxylessnas.runtime.seeding import seed_everything
from proxylessnas.runtime.stopping import RunInterrupted, handling_signals, stop_on_signals
from proxylessnas.search.config import RESUMABLE_FIELDS, SearchConfig, load_config
from proxylessnas.search.convergence import (
    collapse_warning,
    convergence_summary,
    convergence_warning,
    format_convergence,
)
from proxylessnas.search.selection import band_candidates, meets_target, select_by_measurement
from proxylessnas.search.strategies import (
    LatencyObjective,
    batch_norms,
    entropy_weight,
    make_arch_optimizer,
    make_strategy,
)
from proxylessnas.space import Arch, SearchSpace, get_space
from proxylessnas.space.ops import is_parameter_free
from proxylessnas.supernet import DecisionSuperNet, batch_statistics_only, build_supernet
from proxylessnas.train.bn_recalibration import recalibrate_bn

CHECKPOINT_FORMAT = "proxylessnas-search"
CHECKPOINT_VERSION = 1
MEASURED_HARDWARE = ("cpu", "cuda", "onnxruntime")
RUN_SUBFOLDERS = ("arches", "plots")  # of the run folder, swept for stale temporary files with it


class SearchInterrupted(RunInterrupted):
    """A :class:`~proxylessnas.runtime.stopping.RunInterrupted` that may come in the final phase (derive,
    test, measure), which is not checkpointed inside: a resume redoes that phase."""

    def __init__(self, signal_number: int, checkpoint: Path, epoch: int, step: int,
                 final_phase: bool = False) -> None:
        self.final_phase = final_phase
        super().__init__(signal_number, checkpoint, epoch, step)

    @property
    def where(self) -> str:
        """For messages, epochs counted from 1 as in the log."""
        if self.final_phase:
            return f"in the final phase, after all {self.epoch} epochs (a resume redoes only that phase)"
        return super().where


@dataclass
class SearchResult:
    """What a run leaves: the derived arch and the numbers of the summary (None until finished)."""

    run_dir: Path
    arch: Arch
    finished: bool
    metrics: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


# -- setup -------------------------------------------------------------------------------------------

def search_space(config: SearchConfig, dataset: Dataset) -> SearchSpace:
    """The preset named in the config, sized for the dataset (classes, resolution, channels)."""
    options = dict(config.space.options)
    for key in ("num_classes", "resolution", "in_chs"):
        if key in options:
            raise ProxylessError(f"space.{key} is set by the dataset", "search config",
                                 f"remove space.{key} (use data.resolution to resize the images)")
    return get_space(config.space.name, num_classes=dataset.num_classes, resolution=dataset.resolution,
                     in_chs=dataset.channels, **options)


def make_cost_model(config: SearchConfig, space: SearchSpace, progress: bool):
    from proxylessnas.hardware.targets import get_cost_model

    hardware = config.hardware
    return get_cost_model(hardware.target, space, batch_size=hardware.batch_size, threads=hardware.threads,
                          progress=progress)


def will_calibrate(config: SearchConfig) -> bool:
    """Whether the run times whole nets to map table sums to measured latency (``latency.calibrate``)."""
    return bool(config.latency.calibrate and config.latency.mode != "penalty"
                and config.hardware.target in MEASURED_HARDWARE)


def make_objective(config: SearchConfig, space: SearchSpace, cost_model) -> LatencyObjective:
    """The latency objective; refuses an impossible target before any training (with calibration,
    an explicit target in ms is checked once the calibration has put it into table units)."""
    latency = config.latency
    return LatencyObjective(space, cost_model, mode=latency.mode, target=latency.target,
                            target_position=latency.target_position, loss_name=latency.loss,
                            loss_params=latency.loss_params, tolerance=latency.tolerance,
                            step_size=latency.step_size, initial_weight=latency.initial_weight,
                            max_weight=latency.max_weight, check_now=not will_calibrate(config),
                            controller_cost=latency.controller_cost)


def weight_optimizer(supernet: DecisionSuperNet, config: SearchConfig) -> torch.optim.SGD:
    """SGD (Nesterov) on the weights; no weight decay on BatchNorm and biases (1-D tensors)."""
    weights = config.weights
    params = supernet.weight_parameters()
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weights.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=weights.lr, momentum=weights.momentum, nesterov=weights.nesterov)


def cosine_lr(base: float, step: int, total: int) -> float:
    """lr = base * 0.5 * (1 + cos(pi * step / total))."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, total))))


def prepare_run_dir(run_dir: Path, config: SearchConfig, resume: bool) -> None:
    """Refuse to overwrite a run, or to resume one with settings that change its shape (early,
    against config.yaml; the checkpoint's own config is checked again when it is loaded)."""
    checkpoint = run_dir / "checkpoint.pt"
    if resume:
        if not checkpoint.is_file():
            raise ProxylessError("nothing to resume: no checkpoint.pt", str(run_dir),
                                 "start the search without --resume")
        saved_path = run_dir / "config.yaml"
        if saved_path.is_file():
            saved = load_config(saved_path)
            accept_changes(saved.flat(), config.flat(), RESUMABLE_FIELDS, str(saved_path))
    else:
        refuse_earlier_run(run_dir, "search")


@contextlib.contextmanager
def interrupt_on_signals(checkpoint: Path, epoch: int) -> Iterator[None]:
    """During the final phase (derive, recalibrate, test, measure), which is not checkpointed inside,
    SIGINT/SIGTERM stop at once with :class:`SearchInterrupted`: the checkpoint written after the
    last epoch resumes it."""
    def handler(number, frame):
        raise SearchInterrupted(number, checkpoint, epoch, 0, final_phase=True)

    with handling_signals(handler):
        yield


class Progress:
    """One progress over every weight step of the run (ETA for the whole search): a bar on a terminal,
    plain periodic lines in a log (:func:`proxylessnas.progress.progress_bar`)."""

    def __init__(self, total: int, done: int, enabled: bool, visible: bool = True) -> None:
        self.bar = None
        self.visible = visible  # False on ranks other than 0: they print nothing
        if enabled:
            from proxylessnas.progress import progress_bar

            self.bar = progress_bar(total, initial=done, desc="search", unit="step", leave=True)

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description(text)

    def step(self, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        elif self.visible:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- per-epoch pieces -------------------------------------------------------------------------------

def entropy(probs: list[torch.Tensor]) -> float:
    """Sum over layers of H(p_l) = -sum_j p_lj ln p_lj (nats)."""
    return sum(float(-(p * torch.log(p.clamp_min(1e-30))).sum()) for p in probs)


@torch.no_grad()
def path_accuracy(supernet: DecisionSuperNet, indices: list[int], batches: BatchIterator,
                  max_batches: int) -> float:
    """Accuracy of one fixed path on up to ``max_batches`` batches (BN on batch statistics,
    running statistics untouched: they describe the mixture of paths, not this one)."""
    supernet.set_path(indices)
    correct = total = 0
    with batch_statistics_only(batch_norms(supernet)):
        for number, (images, labels) in enumerate(batches.epoch(0)):
            if number >= max_batches:
                break
            correct += int((supernet(images).argmax(1) == labels).sum())
            total += len(labels)
    return correct / max(1, total)


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write(path, "".join(json.dumps(row) + "\n" for row in rows), shared=True)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_run_dir(run_dir: Path, progress: Progress) -> str | None:
    """Draw plots/ with :func:`proxylessnas.viz.plot_run`; returns why not, if it could not."""
    try:
        from proxylessnas.viz import plot_run
    except ImportError:
        return "plots skipped: proxylessnas.viz.plot_run is not available in this install"
    try:
        plot_run(run_dir)
    except ProxylessError as err:
        return f"plots skipped: {err.line()}"
    except Exception as err:  # noqa: BLE001 - plots are a by-product: a drawing bug must not end a search
        return f"plots skipped: {type(err).__name__}: {err} (a plotting bug; the search goes on)"
    return None


# -- the run ---------------------------------------------------------------------------------------------

def run_search(config: SearchConfig, *, resume: bool = False, dataset: Dataset | None = None,
               cost_model: Any = None, stop_after_epoch: int | None = None,
               on_step: Callable[[int, int], None] | None = None) -> SearchResult:
    """Run (or resume) the search described by ``config``; see the module docstring.

    ``dataset`` and ``cost_model`` replace the ones the config names (tests, notebooks);
    ``stop_after_epoch=k`` returns after epoch k's checkpoint (unfinished, resumable);
    ``on_step(epoch, step)`` is called after every weight step. Under torchrun every rank calls
    this and joins the job (see :mod:`proxylessnas.runtime.distributed` and docs/distributed.md).
    The run folder is locked (rank 0 holds :func:`~proxylessnas.runtime.runfolder_lock.hold_run_folder`)
    before anything in it is read or written: a second search on it is refused.
    """
    device = resolve_device(config.run.device, "run.device", "run.device=cpu")
    lock = functools.partial(hold_run_folder, config.run.out, "search run folder", RUN_SUBFOLDERS)
    with distributed_session(device, config.run.distributed_timeout) as context, context.held_on_main(lock):
        return search_on_rank(config, context, rank_device(device, context), resume=resume, dataset=dataset,
                              cost_model=cost_model, stop_after_epoch=stop_after_epoch, on_step=on_step)


def search_on_rank(config: SearchConfig, context: DistributedContext, device: torch.device, *,
                   resume: bool, dataset: Dataset | None, cost_model: Any, stop_after_epoch: int | None,
                   on_step: Callable[[int, int], None] | None) -> SearchResult:
    """The search loop of one process (one rank of ``context``); rank 0 writes every file."""
    run_dir = Path(config.run.out)
    context.on_main(prepare_run_dir, run_dir, config, resume)
    if config.run.threads is not None:
        torch.set_num_threads(config.run.threads)
    seed = config.run.seed
    seed_everything(seed)
    progress_enabled = config.run.progress and context.is_main

    # data: weights train on train_part, the architecture on valid_part, the test set only reports
    if dataset is None:
        dataset = load_dataset(config.data.dataset, resolution=config.data.resolution,
                               limit_per_class=config.data.limit_per_class)
    valid_size = config.data.valid_size
    valid_size = int(valid_size) if valid_size >= 1 else float(valid_size)
    train_part, valid_part = split_validation(dataset, valid_size, seed=seed)
    # under DDP each rank takes its shard of both splits; the batch sizes are per rank
    train_batches = context.shard(BatchIterator.for_dataset(
        dataset, train_part, config.data.batch_size, augment=config.data.augment, seed=seed, drop_last=True,
        device=device))
    valid_batches = context.shard(BatchIterator.for_dataset(
        dataset, valid_part, config.data.valid_batch_size, augment=False, seed=seed + 1, drop_last=True,
        device=device))
    valid_eval = BatchIterator.for_dataset(dataset, valid_part, config.data.eval_batch_size, augment=False,
                                           shuffle=False, device=device)
    if len(train_batches) == 0 or len(valid_batches) == 0:
        raise ProxylessError(f"too few images for batch sizes {config.data.batch_size}/"
                             f"{config.data.valid_batch_size}", dataset.summary(),
                             "lower data.batch_size / data.valid_batch_size or use more images")

    # space, cost model, target (an impossible target stops here, before training)
    space = search_space(config, dataset)
    if cost_model is None:
        cost_model = make_cost_model(config, space, progress_enabled)
    objective = make_objective(config, space, cost_model)

    supernet = build_supernet(space, dataset.num_classes, mixed_op=config.search.mixed_op).to(device)
    supernet = context.sync_batchnorm(supernet, config.run.sync_batchnorm)
    with torch.no_grad():
        init = torch.Generator().manual_seed(seed)
        for alpha in supernet.arch_parameters():
            alpha.copy_(torch.randn(alpha.shape, generator=init) * config.arch.init_std)
    weights_optimizer = weight_optimizer(supernet, config)
    arch_optimizer = make_arch_optimizer(supernet, config.arch.lr, (config.arch.beta1, config.arch.beta2),
                                         config.arch.eps, config.arch.weight_decay)
    context.average_gradients_before_step(arch_optimizer)  # identical alphas on every rank
    strategy = make_strategy(config.search.strategy, supernet, objective, arch_optimizer,
                             binary_mode=config.search.binary_mode, samples=config.reinforce.samples,
                             reward_exponent=config.reinforce.reward_exponent,
                             baseline_decay=config.reinforce.baseline_decay)
    # path sampling, saved in the checkpoint; seeded alike on every rank: every rank runs the same paths
    sampler = torch.Generator().manual_seed(seed + 2)

    warmup_epochs, search_epochs = config.search.warmup_epochs, config.search.epochs
    total_epochs = warmup_epochs + search_epochs
    steps_per_epoch = len(train_batches)
    if config.search.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.search.steps_per_epoch)
    metrics_path = run_dir / "metrics.jsonl"
    checkpoint_path = run_dir / "checkpoint.pt"

    epoch, start_step = 0, 0
    sums = new_sums()
    metrics: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []  # settings changed on a resume (resume_changes.record_changes)
    changes: dict[str, Any] = {}
    if resume:
        state = context.on_main(load_checkpoint, checkpoint_path)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
            raise ProxylessError("not a search checkpoint of this version", str(checkpoint_path),
                                 "resume only runs written by 'proxyless search'")
        if state.get("finished"):
            raise ProxylessError("this search has already finished", str(run_dir),
                                 "read its arch.json and summary.json, or choose another --out")
        saved_config = SearchConfig.from_dict(state.get("config"), str(checkpoint_path))
        changes = accept_changes(saved_config.flat(), config.flat(), RESUMABLE_FIELDS, str(checkpoint_path))
        try:
            supernet.load_state_dict(state["supernet"])
            with keeping_hyperparameters(weights_optimizer, arch_optimizer):  # changed lrs, betas, ...
                weights_optimizer.load_state_dict(state["weight_optimizer"])
                strategy.load_state_dict(state["strategy"])
            objective.load_state_dict(state["objective"])
            sampler.set_state(state["sampler"])
            valid_batches.load_state_dict(state["valid_iterator"])
            restore_rng_state(state["rng"])
        except (KeyError, RuntimeError, ValueError) as err:
            reason = str(err).splitlines()[0][:100]
            raise ProxylessError(f"checkpoint does not fit this search ({reason})", str(checkpoint_path),
                                 "resume with the settings the run started with") from None
        epoch, sums = int(state["epoch"]), dict(state["sums"])
        # a step inside the epoch counts per-rank batches: rescaled if the world size changed
        start_step = rescale_step(int(state["step"]), int(state.get("world_size", 1)), context.world_size)
        metrics = context.on_main(keep_finished_metrics, metrics_path, epoch)
        history = record_changes(list(state.get("config_history", [])), changes, epoch, start_step)
    else:
        context.on_main(start_run_dir, run_dir, config)
        metrics = []

    def checkpoint_state(at_epoch: int, at_step: int, finished: bool = False, **extra: Any) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "finished": finished,
            "epoch": at_epoch, "step": at_step, "world_size": context.world_size, "config": config.to_dict(),
            "arch": supernet.export().to_dict(), "supernet": supernet.state_dict(),
            "weight_optimizer": weights_optimizer.state_dict(), "strategy": strategy.state_dict(),
            "objective": objective.state_dict(), "sampler": sampler.get_state(),
            "valid_iterator": valid_batches.state_dict(), "rng": capture_rng_state(), "sums": dict(sums),
            "config_history": history, **extra}

    def checkpoint(at_epoch: int, at_step: int) -> None:
        if changes:  # config.yaml (read by a resume): the new settings once a checkpoint holds them, not
            context.on_main(config.save, run_dir / "config.yaml")  # before (a failed resume keeps the old)
        context.on_main(save_checkpoint, checkpoint_path, checkpoint_state(at_epoch, at_step))

    valid_stream = valid_batches.cycle()
    bar = Progress(total_epochs * steps_per_epoch, epoch * steps_per_epoch + start_step, progress_enabled,
                   visible=context.is_main)
    if changes:
        bar.write(f"resumed with changed settings: {describe_changes(changes)} (config_history of the "
                  "checkpoint)")
    if will_calibrate(config) and not resume:
        # resumed runs restore it from the checkpoint; rank 0 measures alone (no contention), the
        # other ranks take its fit
        context.on_main(calibrate_objective, objective, space, config, bar)
        context.load_from_main(objective)
    notes: list[str] = []
    step = start_step
    started = time.perf_counter()
    weight_model = context.wrap(supernet, find_unused_parameters=True, ignore=supernet.arch_parameters())
    try:
        with stop_on_signals() as stop:
            while epoch < total_epochs:
                warming_up = epoch < warmup_epochs
                phase_epoch = epoch if warming_up else epoch - warmup_epochs
                phase_steps = (warmup_epochs if warming_up else search_epochs) * steps_per_epoch
                base_lr = config.weights.warmup_lr if warming_up else config.weights.lr
                arch_steps_on = not warming_up and not (config.arch.skip_first_epoch and phase_epoch == 0
                                                        and search_epochs > 1)
                bar.describe(f"{'warm-up' if warming_up else 'search'} epoch {epoch + 1}/{total_epochs}")
                supernet.train()
                # logged lr: the epoch's last step
                lr = cosine_lr(base_lr, (phase_epoch + 1) * steps_per_epoch - 1, phase_steps)
                batches = train_batches.epoch(epoch, start_step)
                for step in range(start_step, steps_per_epoch):
                    images, labels = next(batches)
                    step_lr = cosine_lr(base_lr, phase_epoch * steps_per_epoch + step, phase_steps)
                    for group in weights_optimizer.param_groups:
                        group["lr"] = step_lr
                    # weight step: one path per layer sampled from p, CE with label smoothing
                    supernet.sample_weight_step(sampler)
                    logits = weight_model(images)
                    loss = F.cross_entropy(logits, labels, label_smoothing=config.weights.label_smoothing)
                    loss_value = check_finite("weight loss", loss)
                    weights_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.weights.grad_clip_norm > 0:
                        torch.nn.utils.clip_grad_norm_(
                            [p for p in supernet.weight_parameters() if p.grad is not None],
                            config.weights.grad_clip_norm)
                    weights_optimizer.step()
                    sums["weight_loss"] += loss_value
                    sums["weight_correct"] += int((logits.argmax(1) == labels).sum())
                    sums["weight_seen"] += len(labels)
                    sums["weight_steps"] += 1
                    # architecture step every update_every weight steps, on the validation split
                    if arch_steps_on and (step + 1) % config.arch.update_every == 0:
                        valid_images, valid_labels = next(valid_stream)
                        progress = (phase_epoch * steps_per_epoch + step + 1) / phase_steps
                        strategy.entropy_weight = entropy_weight(config.arch.entropy_weight, progress)
                        details = strategy.arch_step(valid_images, valid_labels, sampler)
                        sums["arch_steps"] += 1
                        for key, value in details.items():
                            sums[f"arch_{key}"] = sums.get(f"arch_{key}", 0.0) + float(value)
                    bar.step(loss=loss_value, lr=step_lr)
                    if on_step is not None:
                        on_step(epoch, step)
                    stopped = context.stop_signal(stop["signal"])  # every rank stops at the same step
                    if stopped is not None:
                        checkpoint(epoch, step + 1)
                        raise SearchInterrupted(stopped, checkpoint_path, epoch, step + 1)
                del batches
                context.check_identical(supernet.arch_parameters(), "architecture logits", f"epoch {epoch}")
                context.average_attribute(strategy, "baseline")  # REINFORCE: only the mean matters
                row = epoch_record(epoch, warming_up, supernet, objective, context.average_numbers(sums),
                                   valid_eval, config.run.eval_batches, lr,
                                   uses_lambda=strategy.name == "gradient",
                                   previous_arch=metrics[-1].get("arch") if metrics else None)
                row["seconds"] = round(time.perf_counter() - started, 3)
                metrics.append(row)
                context.on_main(write_metrics, metrics_path, metrics)
                context.on_main(write_epoch_arch, run_dir, supernet, objective, epoch)
                epoch, start_step, sums = epoch + 1, 0, new_sums()
                checkpoint(epoch, 0)
                bar.write(epoch_line(row, objective.unit))
                if config.run.plots:
                    note = context.on_main(plot_run_dir, run_dir, bar)
                    if note and note not in notes:
                        notes.append(note)
                        bar.write(note)
                if stop_after_epoch is not None and epoch > stop_after_epoch:
                    return SearchResult(run_dir, supernet.export(), False, metrics)
                stopped = context.stop_signal(stop["signal"])
                if stopped is not None:
                    raise SearchInterrupted(stopped, checkpoint_path, epoch, 0)
    except NonFiniteLoss as err:
        # the weights' rate of the phase; an architecture loss may also come from weights gone astray
        rates = {"weights.warmup_lr": config.weights.warmup_lr} if epoch < warmup_epochs else \
            {"weights.lr": config.weights.lr}
        if err.what != "weight loss":
            rates["arch.lr"] = config.arch.lr
        kept = str(checkpoint_path) if checkpoint_path.exists() else None
        raise ProxylessError(f"{err.what} became {err.value} at epoch {epoch + 1} step {step + 1} of "
                             f"{steps_per_epoch}", str(run_dir),
                             lower_rate_advice("search", run_dir, kept, rates)) from None
    finally:
        bar.close()

    def finish() -> dict[str, Any]:
        summary = finish_search(run_dir, config, dataset, train_part, supernet, objective, device, metrics)
        save_checkpoint(checkpoint_path, checkpoint_state(
            epoch, 0, finished=True, arch=Arch.from_dict(summary["arch"]).to_dict(),
            child_state_dict=summary.pop("_child_state_dict"), summary=json.loads(json.dumps(summary))))
        if config.run.plots:
            note = plot_run_dir(run_dir, bar)
            if note and note not in notes:
                notes.append(note)
        summary["notes"] = notes
        summary["config_history"] = history
        summary["files"] = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                                  if p.is_file() and not p.name.startswith("."))
        write_json_atomic(run_dir / "summary.json", summary)
        return summary

    # rank 0 derives, tests and measures alone (no other rank competes for the CPU); all get the summary
    with interrupt_on_signals(checkpoint_path, epoch):
        summary = context.on_main(finish)
    return SearchResult(run_dir, Arch.from_dict(summary["arch"]), True, metrics, summary)


def start_run_dir(run_dir: Path, config: SearchConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")
    write_metrics(run_dir / "metrics.jsonl", [])


def keep_finished_metrics(path: Path, epoch: int) -> list[dict[str, Any]]:
    """The metrics rows of the first ``epoch`` epochs (the ones a resumed checkpoint has finished)."""
    metrics = [row for row in read_metrics(path) if row["epoch"] <= epoch]
    write_metrics(path, metrics)
    return metrics


def new_sums() -> dict[str, float]:
    return {"weight_loss": 0.0, "weight_correct": 0, "weight_seen": 0, "weight_steps": 0, "arch_steps": 0}


def epoch_record(epoch: int, warming_up: bool, supernet: DecisionSuperNet, objective: LatencyObjective,
                 sums: dict[str, float], valid_eval: BatchIterator, eval_batches: int, lr: float,
                 uses_lambda: bool = True, previous_arch: dict[str, str] | None = None) -> dict:
    """One metrics.jsonl row (``epoch`` counts from 1, as in the log): losses, accuracies, latencies,
    lambda, entropy, convergence (normalised entropy, mean max probability, argmax changes against
    ``previous_arch``, the row before's "arch"; 0 for the first epoch), probabilities."""
    probs = [p.detach().cpu().double() for p in supernet.probs()]
    argmax = [int(p.argmax()) for p in probs]
    arch_steps = max(1, sums["arch_steps"])
    row: dict[str, Any] = {
        "epoch": epoch + 1, "phase": "warmup" if warming_up else "search", "lr": lr,
        "train_loss": sums["weight_loss"] / max(1, sums["weight_steps"]),
        "train_acc": sums["weight_correct"] / max(1, sums["weight_seen"]),
        "arch_steps": int(sums["arch_steps"]),
        "expected_latency": float(objective.expected(probs)),
        "argmax_latency": objective.cost_of(argmax), "target_latency": objective.target,
        "latency_unit": objective.unit, "lambda": objective.weight if uses_lambda else None,
        "entropy": entropy(probs),
        "normalised_entropy": normalised_entropy(probs), "mean_max_prob": mean_max_probability(probs),
        "valid_acc": path_accuracy(supernet, argmax, valid_eval, eval_batches),
        "probs": {layer.label: [round(float(v), 6) for v in p]
                  for layer, p in zip(supernet.space.searched_layers, probs)},
        "arch": {layer.label: layer.candidates[i].token
                 for layer, i in zip(supernet.space.searched_layers, argmax)},
    }
    row["argmax_changes"] = argmax_changes(previous_arch, row["arch"])
    for key, value in sums.items():
        if key.startswith("arch_") and key != "arch_steps":
            row[key] = value / arch_steps if sums["arch_steps"] else None
    if objective.controller is not None and not warming_up:
        check = objective.controller.check_epoch(epoch, row["argmax_latency"])
        row["target_accepted"] = check.accepted
    return row


def epoch_line(row: dict[str, Any], unit: str) -> str:
    text = (f"epoch {row['epoch']} ({row['phase']}): train loss {row['train_loss']:.3f} "
            f"acc {row['train_acc']:.3f}, valid acc (argmax) {row['valid_acc']:.3f}, "
            f"E[lat] {row['expected_latency']:.4g} {unit}, argmax {row['argmax_latency']:.4g} {unit} "
            f"(target {row['target_latency']:.4g})")
    if row.get("lambda") is not None:
        text += f", lambda {row['lambda']:.3g}"
    text += f", entropy {row['entropy']:.3f}"
    if row.get("normalised_entropy") is not None:
        text += (f" (normalised {row['normalised_entropy']:.2f}), max p {row['mean_max_prob']:.2f}, "
                 f"argmax changes {row['argmax_changes']}")
    return text


def write_epoch_arch(run_dir: Path, supernet: DecisionSuperNet, objective: LatencyObjective,
                     epoch: int) -> Arch:
    """arch.json (latest) and arches/epoch_NNN.json: the argmax architecture after the 0-based
    ``epoch``, numbered NNN = epoch + 1 like the log and metrics.jsonl."""
    arch = supernet.export()
    cost = objective.cost_of(arch.indices(supernet.space))
    arch = Arch(arch.space, arch.choices, arch.space_overrides,
                {**arch.metadata, "epoch": epoch + 1, "predicted_latency": cost, "unit": objective.unit})
    arch.save(run_dir / "arches" / f"epoch_{epoch + 1:03d}.json")
    arch.save(run_dir / "arch.json")
    return arch


def spread_architectures(objective: LatencyObjective, count: int, seed: int) -> list[list[int]]:
    """``count`` architectures whose costs spread from the cheapest to the most expensive: for the
    i-th, every layer takes the candidate at rank ~ q_i * (N - 1) of its costs (q_i evenly from 0
    to 1), jittered by one rank at random."""
    rng = np.random.default_rng(seed)
    archs = []
    for q in np.linspace(0.0, 1.0, count):
        indices = []
        for costs in objective.candidate_costs:
            order = torch.argsort(costs).tolist()
            rank = int(np.clip(round(q * (len(order) - 1) + rng.integers(-1, 2)), 0, len(order) - 1))
            indices.append(order[rank])
        archs.append(indices)
    return archs


def calibrate_objective(objective: LatencyObjective, space: SearchSpace, config: SearchConfig,
                        progress: Progress) -> dict[str, Any]:
    """Time ``latency.calibrate`` whole nets, fit measured = slope * predicted + intercept (least
    squares), and move the objective's target into table units (see ``LatencyObjective.calibrate``)."""
    archs = spread_architectures(objective, config.latency.calibrate, config.run.seed)
    predicted = np.array([objective.cost_of(a) for a in archs])
    gauge = search_gauge(objective, space, config)
    measured = np.array(time_architectures(space, archs, config, gauge))
    objective.speed_reference = None if gauge is None else gauge.reference
    slope, intercept = np.polyfit(predicted, measured, 1)
    objective.calibrate(float(slope), float(intercept))
    residual = measured - (slope * predicted + intercept)
    progress.write(f"latency calibration on {len(archs)} nets: measured = {slope:.3f} * table + "
                   f"{intercept:.3f} ms (residual RMS {float(np.sqrt(np.mean(residual ** 2))):.3f} ms); "
                   f"target {objective.requested_target:.4g} ms = {objective.target:.4g} in table units")
    return {"slope": float(slope), "intercept": float(intercept), "predicted": predicted.tolist(),
            "measured": measured.tolist()}


def search_gauge(objective: LatencyObjective, space: SearchSpace, config: SearchConfig) -> SpeedGauge | None:
    """The ``latency.gauge`` reference nets, on the calibration session's scale once there is one."""
    if config.latency.gauge == 0:
        return None
    gauge = SpeedGauge.for_space(space, config.latency.gauge)
    gauge.reference = objective.speed_reference
    return gauge


def time_nets(nets: list[torch.nn.Module], config: SearchConfig, space: SearchSpace,
              warmup: int = 5, gauge: SpeedGauge | None = None) -> list[float]:
    """Median latency (ms) of each whole net on the search's hardware, one interleaved session;
    with a ``gauge``, its nets join the session and the medians are divided by the session's
    speed factor (the first session with the gauge sets its reference)."""
    from proxylessnas.hardware.measure import measure_interleaved, prepare_runner
    from proxylessnas.hardware.targets import backend_for
    from proxylessnas.nets import build_net

    hardware = config.hardware
    backend = backend_for(hardware.target, hardware.batch_size, hardware.threads)
    shape = (hardware.batch_size, space.in_chs, space.resolution, space.resolution)
    extra = [] if gauge is None else [build_net(space, arch) for arch in gauge.archs]
    runners = [prepare_runner(net, shape, backend) for net in [*nets, *extra]]
    rounds = max(2, hardware.measure_runs // 5)
    stats = measure_interleaved(runners, warmup=warmup, rounds=rounds, per_round=5, threads=backend.threads)
    medians = [float(s.median) for s in stats]
    if gauge is None:
        return medians
    factor = gauge.chunk_factors([medians[len(nets):]])[0]
    return [m / factor for m in medians[:len(nets)]]


def time_architectures(space: SearchSpace, archs: list[list[int]], config: SearchConfig,
                       gauge: SpeedGauge | None = None) -> list[float]:
    """:func:`time_nets` of each architecture's net (fresh weights: weights do not change the time)."""
    from proxylessnas.nets import build_net

    layers = space.searched_layers
    return time_nets([build_net(space, Arch.from_ops(space, [layer.candidates[i] for layer, i in
                                                             zip(layers, indices)])) for indices in archs],
                     config, space, gauge=gauge)


def select_measured(supernet: DecisionSuperNet, objective: LatencyObjective, config: SearchConfig,
                    gauge: SpeedGauge | None = None) -> tuple[list[int], str, list[dict[str, Any]]]:
    """Band / under modes on measured hardware: time a few probable architectures that tile the
    band and take the most probable one that meets the target when measured (search/selection.py)."""
    tolerance = config.latency.tolerance
    target = objective.requested_target
    slope, intercept = objective.calibration or (1.0, 0.0)
    low_ms = target * (1 - 1.5 * tolerance if objective.mode == "band" else 1 - 3 * tolerance)
    high_ms = target * (1 + 1.5 * tolerance if objective.mode == "band" else 1.0)

    def propose(drift: float) -> list:
        return band_candidates(supernet.arch_parameters(), objective.candidate_costs, objective.fixed,
                               (low_ms / drift - intercept) / slope, (high_ms / drift - intercept) / slope)

    chosen, how, measured = select_by_measurement(
        propose, lambda archs: time_architectures(supernet.space, [list(a) for a in archs], config, gauge),
        lambda predicted: slope * predicted + intercept, target, tolerance, objective.mode)
    table = [{"indices": list(c.indices), "log_prob": c.log_prob, "predicted": c.predicted,
              "measured": c.measured} for c in measured]
    return list(chosen.indices), how, table


def measure_net_latency(net: torch.nn.Module, config: SearchConfig, space: SearchSpace,
                        gauge: SpeedGauge | None = None) -> float | None:
    """Median latency (ms) of the whole derived net on the measured hardware; None for tables / MACs."""
    if config.hardware.target not in MEASURED_HARDWARE:
        return None
    return time_nets([net], config, space, warmup=10, gauge=gauge)[0]


def finish_search(run_dir: Path, config: SearchConfig, dataset: Dataset, train_part,
                  supernet: DecisionSuperNet, objective: LatencyObjective, device: torch.device,
                  metrics: list[dict]) -> dict[str, Any]:
    """Derive, recalibrate BN, test, measure; write the final arch.json; return the summary."""
    from proxylessnas.train.loops import evaluate

    space = supernet.space
    indices, selection = objective.select(supernet.arch_parameters())
    measured_candidates = None
    gauge = search_gauge(objective, space, config) if config.hardware.target in MEASURED_HARDWARE else None
    if objective.controller is not None and config.hardware.target in MEASURED_HARDWARE:
        indices, selection, measured_candidates = select_measured(supernet, objective, config, gauge)
    layers = space.searched_layers
    probs = [p.detach().cpu() for p in supernet.probs()]
    predicted = objective.cost_of(indices)
    chosen = Arch.from_ops(space, [layer.candidates[i] for layer, i in zip(layers, indices)])
    derived = supernet.derive(chosen, inherit=True)
    recalibration = BatchIterator.for_dataset(dataset, train_part, config.data.batch_size, augment=False,
                                              seed=config.run.seed + 3, device=device)
    recalibrate_bn(derived, recalibration.epoch(0), config.run.bn_recalibration_batches)
    test = BatchIterator.for_dataset(dataset, dataset.test, config.data.eval_batch_size, augment=False,
                                     shuffle=False, device=device)
    result = evaluate(derived, test, dataset.num_classes)
    test_accuracy = result.top1 / 100.0
    derived_cpu = derived.to("cpu") if config.hardware.target != "cuda" else derived
    measured = measure_net_latency(derived_cpu, config, space, gauge)
    choices = {layer.label: layer.candidates[i].token for layer, i in zip(layers, indices)}
    metadata = {
        "predicted_latency": predicted, "measured_latency": measured, "unit": objective.unit,
        "target_latency": objective.requested_target, "target_in_model_units": objective.target,
        "latency_mode": objective.mode, "target_accepted": objective.accepts(predicted),
        "selection": selection, "measured_candidates": measured_candidates,
        "test_accuracy": test_accuracy, "hardware": config.hardware.target,
        "dataset": config.data.dataset, "strategy": config.search.strategy,
        "probabilities": {layer.label: [round(float(v), 6) for v in p] for layer, p in zip(layers, probs)},
    }
    arch = Arch.from_ops(space, list(choices.values()), metadata)
    arch.save(run_dir / "arch.json")
    convergence = convergence_summary(metrics)
    free = {op.token for d in space.decisions for op in d.candidates if is_parameter_free(op)}
    convergence["collapse"] = collapse_warning(choices, free)
    convergence["warning"] = convergence_warning(
        convergence, epochs=config.search.epochs, update_every=config.arch.update_every,
        arch_lr=config.arch.lr, warmup_epochs=config.search.warmup_epochs, latency_mode=config.latency.mode)
    summary: dict[str, Any] = {
        "run_dir": str(run_dir), "arch": arch.to_dict(), "choices": choices,
        "predicted_latency": predicted, "measured_latency": measured, "unit": objective.unit,
        "target_latency": objective.requested_target, "target_in_model_units": objective.target,
        "calibration": None if objective.calibration is None else list(objective.calibration),
        "predicted_latency_calibrated": (None if objective.calibration is None else
                                         objective.calibration[0] * predicted + objective.calibration[1]),
        "latency_mode": objective.mode, "cheapest_latency": objective.cheapest,
        "most_expensive_latency": objective.most_expensive,
        "target_accepted": objective.accepts(predicted), "selection": selection,
        "measured_within_tolerance": (
            None if measured is None or objective.mode == "penalty"
            else meets_target(measured, objective.requested_target, config.latency.tolerance,
                              objective.mode)),
        "speed_factors": None if gauge is None else gauge.factors,
        "test_accuracy": test_accuracy, "bn_recalibration_batches": config.run.bn_recalibration_batches,
        "epochs": len(metrics),
        "convergence": convergence,
        "_child_state_dict": {k: v.detach().cpu() for k, v in derived.state_dict().items()},
    }
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run report: op per layer, latencies, accuracy, convergence, files; a convergence
    warning, when there is one, as the last lines."""
    unit = summary["unit"]
    lines = ["", "chosen architecture:"]
    width = max(len(label) for label in summary["choices"])
    for label, op in summary["choices"].items():
        lines.append(f"  {label:<{width}}  {op}")
    measured = summary["measured_latency"]
    lines.append(f"latency: predicted {summary['predicted_latency']:.4g} {unit}, measured "
                 + (f"{measured:.4g} ms" if measured is not None else "n/a (no measurement on this target)")
                 + f"; target {summary['target_latency']:.4g} {unit} ({summary['latency_mode']}), "
                 f"space spans {summary['cheapest_latency']:.4g}-"
                 f"{summary['most_expensive_latency']:.4g} {unit}")
    if summary.get("calibration"):
        slope, intercept = summary["calibration"]
        low = slope * summary["cheapest_latency"] + intercept
        high = slope * summary["most_expensive_latency"] + intercept
        lines.append(f"calibration: measured = {slope:.3f} * table + {intercept:.3f} ms (space ~{low:.4g}-"
                     f"{high:.4g} ms measured); target in table units "
                     f"{summary['target_in_model_units']:.4g}; calibrated prediction "
                     f"{summary['predicted_latency_calibrated']:.4g} ms")
    if summary.get("speed_factors"):
        factors = ", ".join(f"{f:.3f}" for f in summary["speed_factors"])
        lines.append(f"machine speed against the calibration session: {factors} (slower > 1; divided out)")
    if summary.get("measured_within_tolerance") is not None:
        verdict = "within" if summary["measured_within_tolerance"] else "NOT within"
        lines.append(f"measured latency is {verdict} the tolerance of the target")
    if summary["selection"] != "argmax":
        lines.append(f"selection: {summary['selection']}")
    lines.append(f"test accuracy with inherited weights after BN recalibration: "
                 f"{100 * summary['test_accuracy']:.2f}%")
    convergence = summary.get("convergence")
    if convergence:
        lines.append(format_convergence(convergence))
    for note in summary.get("notes", []):
        lines.append(note)
    lines.append(f"run directory {summary['run_dir']}: {', '.join(summary.get('files', []))}")
    for key in ("collapse", "warning"):
        if convergence and convergence.get(key):
            lines.extend(convergence[key].splitlines())
    return "\n".join(lines)
