"""``train_model``: one training run with metrics, best/last checkpoints and exact resume.

Files in ``out_dir``:
- ``last.pt`` / ``best.pt``: checkpoints (see :func:`checkpoint_state`); ``best`` has the highest
  test top-1 of the deployed weights (the EMA when enabled);
- ``metrics.jsonl``: one JSON line per finished epoch;
- ``run.json``: recipe, dataset, target and net config of the run, and its config history.

One process writes ``out_dir``: rank 0 locks it (:mod:`proxylessnas.runtime.runfolder_lock`) before
anything in it is read or written, and removes the temporary files a killed run left there. A
NaN or infinite loss (on any rank) stops the run before its backward pass, and weights that
became NaN or infinite are never saved: one :class:`~proxylessnas.errors.ProxylessError` line,
the last good checkpoint kept, the resume command with a lower learning rate given.

SIGINT or SIGTERM finishes the current step, writes ``last.pt`` at that position and raises
:class:`~proxylessnas.runtime.stopping.RunInterrupted`. Resuming restores model, optimiser, EMA, grad
scaler, every random generator, the epoch and the step inside it (the batch order depends only
on (seed, epoch), see ``BatchIterator``) and the partial epoch sums, so a resumed run is
bit-exact on CPU with an uninterrupted one. The learning rate is a function of the step: there
is no scheduler state. A resume may change the recipe fields that do not change the run's
shape (``RESUMABLE_FIELDS``), recorded in ``config_history`` (:mod:`proxylessnas.runtime.resume_changes`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from proxylessnas.data.dataset import Dataset
from proxylessnas.data.iterator import BatchIterator, rescale_step
from proxylessnas.errors import ProxylessError
from proxylessnas.progress import progress_bar
from proxylessnas.runtime.atomic import write_json_atomic
from proxylessnas.runtime.checkpoint import capture_rng_state, restore_rng_state, save_checkpoint
from proxylessnas.runtime.distributed import (
    DEFAULT_TIMEOUT_SECONDS,
    DistributedContext,
    distributed_session,
    rank_device,
)
from proxylessnas.runtime.finite import NonFiniteLoss, count_nonfinite
from proxylessnas.runtime.metrics import append_metrics, keep_metrics
from proxylessnas.runtime.resumable import ResumableRun
from proxylessnas.runtime.resume_changes import (
    accept_changes,
    describe_changes,
    keeping_hyperparameters,
    lower_rate_advice,
    record_changes,
)
from proxylessnas.runtime.runfolder_lock import hold_run_folder
from proxylessnas.runtime.seeding import seed_everything
from proxylessnas.runtime.stopping import RunInterrupted, resume_command, stop_on_signals
from proxylessnas.train.ema import ModelEma
from proxylessnas.train.loops import (
    EpochTotals,
    drop_path_modules,
    evaluate,
    make_optimizer,
    needs_grad_scaler,
    train_one_epoch,
)
from proxylessnas.train.recipe import ADDED_FIELDS, RESUMABLE_FIELDS, TrainRecipe, learning_rate

CHECKPOINT_KIND = "proxylessnas.train"
CHECKPOINT_SCHEMA_VERSION = 1
TRAIN_RUN = ResumableRun("last.pt", {"kind": CHECKPOINT_KIND, "schema_version": CHECKPOINT_SCHEMA_VERSION},
                         "train", "training", required=("run", "net_config"),
                         results="its best.pt and metrics.jsonl")


def train_batches(dataset: Dataset, recipe: TrainRecipe, device: torch.device) -> BatchIterator:
    return BatchIterator.for_dataset(dataset, dataset.train, recipe.batch_size, augment=True,
                                     seed=recipe.seed, drop_last=True, device=device, cutout=recipe.cutout)


def test_batches(dataset: Dataset, batch_size: int, device: torch.device | str) -> BatchIterator:
    return BatchIterator.for_dataset(dataset, dataset.test, batch_size, augment=False, shuffle=False,
                                     device=device)


def checkpoint_state(model: nn.Module, deploy: nn.Module, optimizer, ema: ModelEma | None, scaler,
                     *, epoch: int, step: int, global_step: int, totals: EpochTotals, best_top1: float,
                     run_info: dict, world_size: int = 1,
                     config_history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything a resume needs, plus ``net_config`` and ``weights`` (the deployed weights) for
    ``proxyless eval`` and ``proxyless export``."""
    return TRAIN_RUN.stamped({
        "net_config": model.config(),
        "weights": deploy.state_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng_state": capture_rng_state(),
        "epoch": epoch,
        "step": step,  # per-rank steps of a job of ``world_size`` processes
        "world_size": world_size,
        "global_step": global_step,
        "epoch_totals": asdict(totals),
        "best_top1": best_top1,
        "run": run_info,
        "config_history": config_history or [],
    })


def _save_epoch(last_path: Path, best_path: Path, state: dict, is_best: bool) -> None:
    """last.pt (and best.pt), then run.json with the settings and config history they hold."""
    save_checkpoint(last_path, state)
    if is_best:
        save_checkpoint(best_path, state)
    _write_run_json(last_path.parent, state)


def _write_run_json(out_dir: Path, state: dict) -> None:
    write_json_atomic(out_dir / "run.json", {**state["run"], "net_config": state["net_config"],
                                             "config_history": state["config_history"]})


def train_model(
    model: nn.Module,
    dataset: Dataset,
    recipe: TrainRecipe,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    saved: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    max_steps: int | None = None,
    run_info: dict | None = None,
    log: Callable[[str], None] = print,
    sync_batchnorm: bool = False,
    distributed_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Train ``model`` (a ``ProxylessNet``) on ``dataset`` with ``recipe``; returns the last
    metrics record. ``resume=True`` continues the run in ``out_dir`` from its ``last.pt``
    (``saved``: that checkpoint, when the caller has read it already with :func:`read_saved_run`).
    ``max_steps`` stops after that many optimiser steps in total (the last
    checkpoint then holds the position inside the epoch; ``resume=True`` continues); so does
    SIGINT or SIGTERM, after the current step, then raising
    :class:`~proxylessnas.runtime.stopping.RunInterrupted`.

    Under torchrun every rank calls this: DDP over the ranks, ``recipe.batch_size`` images per
    rank, rank 0 writes the files, ``sync_batchnorm`` for SyncBatchNorm (GPUs), collectives
    time out after ``distributed_timeout`` seconds (docs/distributed.md)."""
    device = torch.device(device)
    with distributed_session(device, distributed_timeout) as context, \
            context.held_on_main(lambda: hold_run_folder(out_dir, "training run folder")), \
            stop_on_signals() as stop_flag:
        return train_on_rank(model, dataset, recipe, Path(out_dir), context, rank_device(device, context),
                             resume=resume, saved=saved, progress=progress, max_steps=max_steps,
                             run_info=run_info,
                             log=log if context.is_main else _quiet, sync_batchnorm=sync_batchnorm,
                             stop_flag=stop_flag)


def _quiet(text: str) -> None:
    del text  # ranks other than 0 print nothing


def train_on_rank(model: nn.Module, dataset: Dataset, recipe: TrainRecipe, out_dir: Path,
                  context: DistributedContext, device: torch.device, *, resume: bool,
                  saved: dict[str, Any] | None, progress: bool,
                  max_steps: int | None, run_info: dict | None, log: Callable[[str], None],
                  sync_batchnorm: bool, stop_flag: dict[str, int | None]) -> dict[str, Any]:
    """The training loop of one process (one rank of ``context``); see :func:`train_model`.
    ``stop_flag["signal"]``: a SIGINT/SIGTERM received
    (:func:`~proxylessnas.runtime.stopping.stop_on_signals`)."""
    last_path, best_path, metrics_path = out_dir / "last.pt", out_dir / "best.pt", out_dir / "metrics.jsonl"
    run_info = {**(run_info or {}), "recipe": recipe.to_dict(), "dataset": dataset.name,
                "train_images": len(dataset.train)}
    context.on_main(TRAIN_RUN.prepare, out_dir, resume)  # nothing to resume, or an earlier run: stop here
    state = None
    if resume:
        state = saved if saved is not None else context.on_main(read_saved_run, out_dir)
    train_iter = context.shard(train_batches(dataset, recipe, device))  # batch_size images per rank
    steps_per_epoch = len(train_iter)
    if steps_per_epoch == 0:
        raise ProxylessError(f"{len(dataset.train)} training images give no full batch of "
                             f"{recipe.batch_size}", dataset.name, "lower batch_size")
    test_iter = test_batches(dataset, recipe.eval_batch_size, device)
    if recipe.drop_path > 0 and not drop_path_modules(model):
        raise ProxylessError(f"drop_path={recipe.drop_path} but the net has no drop-path units", "recipe",
                             "give drop_path=0, or train a pyramid-tree net (e.g. proxyless_cifar)")
    if recipe.cutout >= dataset.resolution * 2:
        raise ProxylessError(f"cutout={recipe.cutout} px covers every {dataset.resolution} px image whole",
                             "recipe", f"give cutout below {dataset.resolution * 2} (16 at 32 px), or 0")
    if recipe.cutout * 2 > dataset.resolution:
        warnings.warn(f"cutout={recipe.cutout} px is more than half the {dataset.resolution} px image side "
                      "(CIFAR's 16 is for 32 px images): give cutout="
                      f"{dataset.resolution // 2} for these images", stacklevel=2)

    model.to(device)
    model = context.sync_batchnorm(model, sync_batchnorm)
    if recipe.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, recipe)
    ema = ModelEma(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(device, recipe.amp) else None
    forward = context.wrap(model)  # DDP: gradients averaged over ranks in backward
    forward = torch.compile(forward) if recipe.compile else forward

    epoch, step, global_step, best_top1 = 0, 0, 0, float("-inf")
    totals = EpochTotals()
    history: list[dict[str, Any]] = []  # settings changed on a resume (resume_changes.record_changes)
    if state is not None:
        saved = state["run"]
        saved_recipe = {**ADDED_FIELDS, **saved.get("recipe", {})}  # runs from before these fields
        changes = accept_changes(saved_recipe, recipe.to_dict(), RESUMABLE_FIELDS, str(last_path))
        if state["net_config"] != model.config():
            raise ProxylessError("the net differs from the saved run", str(last_path),
                                 "resume with the same target and dataset")
        for key in ("dataset", "train_images"):
            if key in saved and saved[key] != run_info[key]:
                raise ProxylessError(f"the dataset differs from the saved run ({key} {saved[key]!r}, now "
                                     f"{run_info[key]!r})", str(last_path), "resume with the run's dataset")
        model.load_state_dict(state["model"])
        with keeping_hyperparameters(optimizer):  # a changed momentum or weight decay applies
            optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        epoch, step, global_step = int(state["epoch"]), int(state["step"]), int(state["global_step"])
        saved_world_size = int(state.get("world_size", 1))
        if saved_world_size != context.world_size:  # the same images seen, counted in this job's steps
            step = rescale_step(step, saved_world_size, context.world_size)
            global_step = epoch * steps_per_epoch + step
        totals = EpochTotals(**state["epoch_totals"])
        totals.steps = step  # (rescaled) steps of this epoch already done
        best_top1 = float(state["best_top1"])
        restore_rng_state(state["rng_state"])
        history = record_changes(list(state.get("config_history", [])), changes, epoch, step)
        log(f"resumed {last_path} at epoch {epoch + 1} step {step}"
            + (f" with {describe_changes(changes)}" if changes else ""))
        state = None  # the loaded tensors are in the model and optimiser now
    else:
        seed_everything(recipe.seed)
        context.on_main(_write_run_json, out_dir, {"run": run_info, "net_config": model.config(),
                                                   "config_history": history})
    kept_rows = context.on_main(keep_metrics, metrics_path, epoch)
    deploy = ema.module if ema is not None else model

    def save(is_best: bool = False) -> None:
        current = checkpoint_state(model, deploy, optimizer, ema, scaler, epoch=epoch, step=step,
                                   global_step=global_step, totals=totals, best_top1=best_top1,
                                   run_info=run_info, world_size=context.world_size, config_history=history)
        context.on_main(_save_epoch, last_path, best_path, current, is_best)

    def signalled() -> int | None:  # every rank stops at the same step
        return context.stop_signal(stop_flag["signal"])

    record: dict[str, Any] = kept_rows[-1] if kept_rows else {}
    while epoch < recipe.epochs:
        if max_steps is not None and global_step >= max_steps:
            break
        started = time.perf_counter()
        bar = progress_bar(steps_per_epoch, initial=step, desc=f"epoch {epoch + 1}/{recipe.epochs}",
                           unit="step", enabled=progress and context.is_main)
        try:
            totals, global_step = train_one_epoch(
                model, optimizer, train_iter.epoch(epoch, step), recipe, steps_per_epoch=steps_per_epoch,
                global_step=global_step, totals=totals, ema=ema, scaler=scaler, forward=forward,
                max_steps=max_steps, progress=bar, context=context,
                stop=lambda: signalled() is not None)
        except NonFiniteLoss as err:  # totals.steps: the steps done before the one that failed
            where = f"epoch {epoch + 1} step {totals.steps + 1} of {steps_per_epoch}"
            raise ProxylessError(f"{err.what} became {err.value} at {where}", str(out_dir),
                                 _nonfinite_fix(out_dir, recipe)) from None
        finally:
            bar.close()
        step = totals.steps
        _require_finite_weights(model, deploy, out_dir, recipe, epoch, step)
        if step < steps_per_epoch:  # stopped inside the epoch: save the position and leave
            save()
            stopped = signalled()
            if stopped is not None:
                raise RunInterrupted(stopped, last_path, epoch, step)
            log(f"stopped at epoch {epoch + 1} step {step} of {steps_per_epoch}; continue with "
                f"'{resume_command('train', out_dir)}'")
            break
        context.check_identical(list(model.parameters()), "weights", f"epoch {epoch + 1}")
        # every rank tests on the whole test set (identical weights: identical results)
        result = evaluate(deploy, test_iter, dataset.num_classes, amp=recipe.amp)
        all_ranks = EpochTotals(**context.average_numbers(asdict(totals)))  # sums averaged: ratios exact
        record = {"epoch": epoch + 1, "global_step": global_step,
                  "lr": learning_rate(recipe, global_step - 1, steps_per_epoch),
                  **all_ranks.as_metrics(), **result.as_metrics("test"),
                  "epoch_seconds": round(time.perf_counter() - started, 3)}
        if ema is not None:
            raw = evaluate(model, test_iter, dataset.num_classes, amp=recipe.amp)
            record.update(raw.as_metrics("raw_test"))
        is_best = result.top1 > best_top1
        best_top1 = max(best_top1, result.top1)
        record["best_test_top1"] = best_top1
        epoch, step, totals = epoch + 1, 0, EpochTotals()
        context.on_main(append_metrics, metrics_path, record)
        save(is_best)
        log(f"epoch {epoch}/{recipe.epochs}: train loss {record['train_loss']:.4f} "
            f"top1 {record['train_top1']:.2f} | test loss {result.loss:.4f} top1 {result.top1:.2f} "
            f"top5 {result.top5:.2f} | {record['epoch_seconds']:.1f}s")
        stopped = signalled()  # a signal during the test: the epoch is saved, stop before the next
        if stopped is not None and epoch < recipe.epochs:
            raise RunInterrupted(stopped, last_path, epoch, 0)
    return record


def read_saved_run(out_dir: Path) -> dict[str, Any]:
    """The ``last.pt`` checkpoint of the training run in ``out_dir``, to resume it; one line when
    there is nothing to resume."""
    state = TRAIN_RUN.load(out_dir)
    if not isinstance(state["run"], dict):
        raise ProxylessError("not a training checkpoint of this version", str(TRAIN_RUN.checkpoint(out_dir)),
                             "resume only runs written by 'proxyless train'")
    return state


def _nonfinite_fix(out_dir: Path, recipe: TrainRecipe) -> str:
    """What to do after a NaN: which checkpoint is kept, and exactly what to type."""
    kept = " and ".join(name for name in ("last.pt", "best.pt") if (out_dir / name).is_file()) or None
    return lower_rate_advice("train", out_dir, kept, {"lr": recipe.lr})


def _require_finite_weights(model: nn.Module, deploy: nn.Module, out_dir: Path, recipe: TrainRecipe,
                            epoch: int, step: int) -> None:
    """Refuse to go on (and to save) when the weights or the deployed (EMA) weights hold NaN or
    infinite values; a loss can still be finite on the step that broke them."""
    tensors = [*model.state_dict().values()]
    if deploy is not model:
        tensors += deploy.state_dict().values()
    bad, total = count_nonfinite(tensors)
    if bad:
        raise ProxylessError(f"the weights became NaN or infinite ({bad} of {total} values) by epoch "
                             f"{epoch + 1} step {step}", str(out_dir), _nonfinite_fix(out_dir, recipe))
