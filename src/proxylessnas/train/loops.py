"""The two loops: ``train_one_epoch`` and ``evaluate``. Plain functions, read top to bottom."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from proxylessnas.runtime.distributed import SINGLE_PROCESS, DistributedContext
from proxylessnas.runtime.finite import check_finite
from proxylessnas.train.ema import ModelEma
from proxylessnas.train.recipe import TrainRecipe, drop_path_rate, learning_rate


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: conv/linear weights with ``weight_decay``, BatchNorm and biases without.

    A parameter with one dimension or none is a BatchNorm scale/shift or a bias; decaying them
    only fights the normalisation (PAPER.md section 4: no weight decay on BN).
    """
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.SGD:
    """SGD with (Nesterov) momentum over :func:`parameter_groups`."""
    return torch.optim.SGD(parameter_groups(model, recipe.weight_decay), lr=recipe.lr,
                           momentum=recipe.momentum, nesterov=recipe.nesterov and recipe.momentum > 0)


def autocast_context(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when supported (float16 otherwise); nothing on CPU."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def needs_grad_scaler(device: torch.device, amp: bool) -> bool:
    return amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()


def drop_path_modules(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` with drop-path units (a :class:`~proxylessnas.nets.graph_net.GraphNet`
    of a space that names them); empty when it has none."""
    return [module for module in model.modules() if getattr(module, "drop_path_units", None)]


@dataclass
class EpochTotals:
    """Running sums of one epoch; saved in checkpoints so that a resumed epoch reports the same."""

    loss_sum: float = 0.0
    correct: int = 0
    samples: int = 0
    steps: int = 0

    def as_metrics(self) -> dict[str, float]:
        return {"train_loss": self.loss_sum / max(1, self.samples),
                "train_top1": 100.0 * self.correct / max(1, self.samples)}


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    recipe: TrainRecipe,
    *,
    steps_per_epoch: int,
    global_step: int,
    totals: EpochTotals | None = None,
    ema: ModelEma | None = None,
    scaler: torch.amp.GradScaler | None = None,
    forward: nn.Module | None = None,
    max_steps: int | None = None,
    progress=None,
    context: DistributedContext = SINGLE_PROCESS,
    stop: Callable[[], bool] | None = None,
) -> tuple[EpochTotals, int]:
    """Train on ``batches`` (the rest of one epoch); returns (totals, global step reached).

    Each step sets the learning rate from :func:`learning_rate` and the drop-path rate from
    :func:`~proxylessnas.train.recipe.drop_path_rate` at ``global_step``, minimises
    cross-entropy with label smoothing, and updates ``ema``. ``forward`` is the module to call
    (a ``torch.compile`` wrapper of ``model``); ``max_steps`` stops early once ``global_step``
    reaches it (time-boxed runs, interruption tests); ``stop()``, asked after every step (on every
    rank: it must answer alike), ends the epoch early when it is true (a signal). A NaN or
    infinite loss on any rank of ``context`` raises :class:`~proxylessnas.runtime.finite.NonFiniteLoss` on
    every rank before its backward pass (``totals.steps`` then counts the steps done).
    """
    totals = totals or EpochTotals()
    forward = forward or model
    device = next(model.parameters()).device
    model.train()
    droppers = drop_path_modules(model) if recipe.drop_path > 0 else []  # found once, set every step
    for images, labels in batches:
        if max_steps is not None and global_step >= max_steps:
            break
        rate = learning_rate(recipe, global_step, steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = rate
        for module in droppers:
            module.drop_path_rate = drop_path_rate(recipe, global_step, steps_per_epoch)
        if recipe.channels_last and device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, recipe.amp):
            logits = forward(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=recipe.label_smoothing)
        loss_value = float(loss.detach())
        # under DDP the mean over ranks: NaN or infinite when any rank's is, so all ranks stop together
        check_finite("training loss", context.average_numbers({"loss": loss_value})["loss"])
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if recipe.grad_clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if ema is not None:
            ema.update(model)
        global_step += 1
        count = labels.numel()
        totals.loss_sum += loss_value * count
        totals.correct += int((logits.detach().argmax(1) == labels).sum())
        totals.samples += count
        totals.steps += 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{totals.loss_sum / totals.samples:.3f}", lr=f"{rate:.4f}")
        if stop is not None and stop():
            break
    return totals, global_step


@dataclass
class EvalResult:
    """Loss, top-1/top-5 accuracy (percent), per-class accuracy and the confusion matrix
    (rows: true class, columns: predicted class)."""

    loss: float
    top1: float
    top5: float
    samples: int
    per_class: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    def as_metrics(self, prefix: str = "test") -> dict[str, float]:
        return {f"{prefix}_loss": self.loss, f"{prefix}_top1": self.top1, f"{prefix}_top5": self.top5}


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
             *, amp: bool = False, progress=None) -> EvalResult:
    """Cross-entropy (no smoothing), top-1, top-5 (top-k with k = min(5, classes)), per class."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    loss_sum, top5_hits, samples = 0.0, 0, 0
    k = min(5, num_classes)
    for images, labels in batches:
        with autocast_context(device, amp):
            logits = model(images).float()
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        top = logits.topk(k, dim=1).indices
        top5_hits += int((top == labels[:, None]).any(1).sum())
        pairs = labels.cpu() * num_classes + top[:, 0].cpu()
        confusion += torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, -1)
        samples += labels.numel()
        if progress is not None:
            progress.update(1)
    model.train(was_training)
    per_class_total = confusion.sum(1).clamp_min(1)
    per_class = (100.0 * confusion.diagonal() / per_class_total).tolist()
    top1 = 100.0 * float(confusion.diagonal().sum()) / max(1, samples)
    return EvalResult(loss=loss_sum / max(1, samples), top1=top1, top5=100.0 * top5_hits / max(1, samples),
                      samples=samples, per_class=per_class, confusion=confusion.tolist())
