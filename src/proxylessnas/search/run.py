"""``run_search``: the whole ProxylessNAS search, one loop read top to bottom.

    build:           data, space, cost profile, target and latency loss, supernet, optimisers,
                     strategy (:mod:`~proxylessnas.search.build`); the run folder, new or resumed
                     (:class:`~proxylessnas.search.run_dir.RunDir`); the latency calibration
                     (:mod:`~proxylessnas.search.calibration`)
    warm-up epochs:  weight steps only, one random path per layer (p is ~uniform), cosine LR
                     from ``weights.warmup_lr``
    search epochs:   weight step (one sampled path, CE with label smoothing, SGD Nesterov)
                     and every ``arch.update_every`` weight steps one architecture step of the
                     strategy on a batch of the architecture-validation split (none in the
                     first search epoch when ``arch.skip_first_epoch``), cosine LR from ``weights.lr``
    each epoch end:  metrics.jsonl row and log line (:mod:`~proxylessnas.search.epoch_log`),
                     arch.json (+ arches/epoch_NNN.json), checkpoint.pt, plots/
    at the end:      derive, test, measure, summary.json (:mod:`~proxylessnas.search.finish`)

``checkpoint.pt`` resumes exactly: supernet, optimisers, strategy, controller, calibration,
samplers, every RNG, the validation iterator's position, the epoch's running sums, (epoch, step)
and the config history; learning rates are a pure function of (epoch, step). SIGINT and SIGTERM
finish the current step, write the checkpoint and raise :class:`SearchInterrupted`; a NaN or
infinite loss raises :class:`~proxylessnas.errors.ProxylessError` saying how to resume with a
lower learning rate, the last good checkpoint kept. A resume may change the settings that do not
change the run's shape (``RESUMABLE_FIELDS``, :mod:`proxylessnas.runtime.resume_changes`).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from proxylessnas.data import Dataset
from proxylessnas.data.iterator import rescale_step
from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.checkpoint import capture_rng_state, restore_rng_state
from proxylessnas.runtime.devices import resolve_device
from proxylessnas.runtime.distributed import DistributedContext, distributed_session, rank_device
from proxylessnas.runtime.finite import NonFiniteLoss, check_finite
from proxylessnas.runtime.resume_changes import describe_changes, lower_rate_advice, record_changes
from proxylessnas.runtime.seeding import seed_everything
from proxylessnas.runtime.stopping import RunInterrupted, handling_signals, stop_on_signals
from proxylessnas.search.build import build_data, build_parts, make_cost_model, search_space
from proxylessnas.search.calibration import calibrate_target, will_calibrate
from proxylessnas.search.config import SearchConfig
from proxylessnas.search.epoch_log import Progress, epoch_line, epoch_record, new_sums
from proxylessnas.search.finish import finish_search
from proxylessnas.search.plots import PlotHook
from proxylessnas.search.run_dir import RunDir
from proxylessnas.search.strategies import entropy_weight
from proxylessnas.space import Arch


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


def cosine_lr(base: float, step: int, total: int) -> float:
    """lr = base * 0.5 * (1 + cos(pi * step / total))."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, total))))


@contextlib.contextmanager
def interrupt_on_signals(checkpoint: Path, epoch: int) -> Iterator[None]:
    """During the final phase, which is not checkpointed inside, SIGINT/SIGTERM stop at once with
    :class:`SearchInterrupted`: the checkpoint written after the last epoch resumes it."""
    def handler(number, frame):
        raise SearchInterrupted(number, checkpoint, epoch, 0, final_phase=True)

    with handling_signals(handler):
        yield


def run_search(config: SearchConfig, *, resume: bool = False, dataset: Dataset | None = None,
               cost_model: Any = None, stop_after_epoch: int | None = None,
               on_step: Callable[[int, int], None] | None = None) -> SearchResult:
    """Run (or resume) the search described by ``config``; see the module docstring.

    ``dataset`` and ``cost_model`` replace the ones the config names (tests, notebooks);
    ``stop_after_epoch=k`` returns after epoch k's checkpoint (unfinished, resumable);
    ``on_step(epoch, step)`` is called after every weight step. Under torchrun every rank calls
    this and joins the job (see :mod:`proxylessnas.runtime.distributed` and docs/distributed.md).
    Rank 0 locks the run folder before anything in it is read or written: a second search on it
    is refused.
    """
    device = resolve_device(config.run.device, "run.device", "run.device=cpu")
    with distributed_session(device, config.run.distributed_timeout) as context, \
            context.held_on_main(RunDir.lock(config.run.out)):
        return search_on_rank(config, context, rank_device(device, context), resume=resume, dataset=dataset,
                              cost_model=cost_model, stop_after_epoch=stop_after_epoch, on_step=on_step)


def search_on_rank(config: SearchConfig, context: DistributedContext, device: torch.device, *,
                   resume: bool, dataset: Dataset | None, cost_model: Any, stop_after_epoch: int | None,
                   on_step: Callable[[int, int], None] | None) -> SearchResult:
    """The search loop of one process (one rank of ``context``); rank 0 writes every file."""
    # -- build the parts (an impossible target stops here, before training and before any file)
    run = RunDir(config.run.out, context)
    run.prepare(config, resume)
    if config.run.threads is not None:
        torch.set_num_threads(config.run.threads)
    seed_everything(config.run.seed)
    progress_enabled = config.run.progress and context.is_main
    data = build_data(config, dataset, context, device)
    space = search_space(config, data.dataset)
    if cost_model is None:
        cost_model = make_cost_model(config, space, progress_enabled)
    parts = build_parts(config, space, data.dataset.num_classes, cost_model, context, device)
    supernet, strategy, weights_optimizer = parts.supernet, parts.strategy, parts.weights_optimizer
    warmup_epochs, search_epochs = config.search.warmup_epochs, config.search.epochs
    total_epochs = warmup_epochs + search_epochs
    steps_per_epoch = len(data.train_batches)
    if config.search.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.search.steps_per_epoch)

    # -- open the run folder, or resume from its checkpoint
    epoch, start_step, sums = 0, 0, new_sums()
    history: list[dict[str, Any]] = []  # settings changed on a resume (resume_changes.record_changes)
    changes: dict[str, Any] = {}
    if resume:
        state, changes = run.resume(config)
        try:
            parts.load_state_dict(state)
            data.valid_batches.load_state_dict(state["valid_iterator"])
            restore_rng_state(state["rng"])
        except (KeyError, RuntimeError, ValueError) as err:
            reason = str(err).splitlines()[0][:100]
            raise ProxylessError(f"checkpoint does not fit this search ({reason})", str(run.checkpoint),
                                 "resume with the settings the run started with") from None
        epoch, sums = int(state["epoch"]), dict(state["sums"])
        # a step inside the epoch counts per-rank batches: rescaled if the world size changed
        start_step = rescale_step(int(state["step"]), int(state.get("world_size", 1)), context.world_size)
        run.keep_rows(epoch)
        history = record_changes(list(state.get("config_history", [])), changes, epoch, start_step)
    else:
        run.start(config)

    def checkpoint_state(at_epoch: int, at_step: int, finished: bool = False, **extra: Any) -> dict[str, Any]:
        return {"finished": finished, "epoch": at_epoch, "step": at_step, "world_size": context.world_size,
                "config": config.to_dict(), **parts.state_dict(),
                "valid_iterator": data.valid_batches.state_dict(), "rng": capture_rng_state(),
                "sums": dict(sums), "config_history": history, **extra}

    def checkpoint(at_epoch: int, at_step: int) -> None:
        run.save_checkpoint(checkpoint_state(at_epoch, at_step), config if changes else None)

    bar = Progress(total_epochs * steps_per_epoch, epoch * steps_per_epoch + start_step, progress_enabled,
                   visible=context.is_main)
    if changes:
        bar.write(f"resumed with changed settings: {describe_changes(changes)} (config_history of the "
                  "checkpoint)")

    # -- calibrate (resumed runs restore it from the checkpoint); rank 0 measures alone (no
    # contention), the other ranks take its fit
    if will_calibrate(config) and not resume:
        context.on_main(calibrate_target, parts.target, space, config, bar.write)
        context.load_from_main(parts.target)
        parts.latency.retarget()

    # -- the epoch loop
    plots = PlotHook(run.path, config.run.plots, context)
    valid_stream = data.valid_batches.cycle()
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
                batches = data.train_batches.epoch(epoch, start_step)
                for step in range(start_step, steps_per_epoch):
                    images, labels = next(batches)
                    step_lr = cosine_lr(base_lr, phase_epoch * steps_per_epoch + step, phase_steps)
                    for group in weights_optimizer.param_groups:
                        group["lr"] = step_lr
                    # weight step: one path per layer sampled from p (or uniformly), CE with label smoothing
                    supernet.sample_weight_step(parts.sampler, config.search.weight_paths)
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
                        details = strategy.arch_step(valid_images, valid_labels, parts.sampler)
                        sums["arch_steps"] += 1
                        for key, value in details.items():
                            sums[f"arch_{key}"] = sums.get(f"arch_{key}", 0.0) + float(value)
                    bar.step(loss=loss_value, lr=step_lr)
                    if on_step is not None:
                        on_step(epoch, step)
                    stopped = context.stop_signal(stop["signal"])  # every rank stops at the same step
                    if stopped is not None:
                        checkpoint(epoch, step + 1)
                        raise SearchInterrupted(stopped, run.checkpoint, epoch, step + 1)
                del batches
                # epoch end: metrics row, arch files, checkpoint, log line, plots
                context.check_identical(supernet.arch_parameters(), "architecture logits", f"epoch {epoch}")
                context.average_attribute(strategy, "baseline")  # REINFORCE: only the mean matters
                row = epoch_record(epoch, warming_up, parts, context.average_numbers(sums), data.valid_eval,
                                   config.run.eval_batches, lr,
                                   previous_arch=run.rows[-1].get("arch") if run.rows else None)
                row["seconds"] = round(time.perf_counter() - started, 3)
                run.append_row(row)
                run.write_epoch_arch(supernet, parts.profile, epoch)
                epoch, start_step, sums = epoch + 1, 0, new_sums()
                checkpoint(epoch, 0)
                bar.write(epoch_line(row, parts.profile.unit))
                plots.after_epoch(bar.write)
                if stop_after_epoch is not None and epoch > stop_after_epoch:
                    return SearchResult(run.path, supernet.export(), False, run.rows)
                stopped = context.stop_signal(stop["signal"])
                if stopped is not None:
                    raise SearchInterrupted(stopped, run.checkpoint, epoch, 0)
    except NonFiniteLoss as err:
        # the weights' rate of the phase; an architecture loss may also come from weights gone astray
        rates = {"weights.warmup_lr": config.weights.warmup_lr} if epoch < warmup_epochs else \
            {"weights.lr": config.weights.lr}
        if err.what != "weight loss":
            rates["arch.lr"] = config.arch.lr
        kept = str(run.checkpoint) if run.checkpoint.exists() else None
        raise ProxylessError(f"{err.what} became {err.value} at epoch {epoch + 1} step {step + 1} of "
                             f"{steps_per_epoch}", str(run.path),
                             lower_rate_advice("search", run.path, kept, rates)) from None
    finally:
        bar.close()

    # -- finish: rank 0 derives, tests and measures alone (no other rank competes for the CPU)
    def finish() -> dict[str, Any]:
        summary = finish_search(run.path, config, data, parts, device, run.rows)
        run.save_final_checkpoint(checkpoint_state(
            epoch, 0, finished=True, arch=Arch.from_dict(summary["arch"]).to_dict(),
            child_state_dict=summary.pop("_child_state_dict"), summary=json.loads(json.dumps(summary))))
        plots.at_end()
        summary["notes"] = [note for note in [config.hardware_term_note()] if note] + plots.notes
        summary["config_history"] = history
        run.write_summary(summary)
        return summary

    with interrupt_on_signals(run.checkpoint, epoch):
        summary = context.on_main(finish)
    return SearchResult(run.path, Arch.from_dict(summary["arch"]), True, run.rows, summary)
