"""Batches for training and search: shuffled, augmented on the tensor's device, resumable, and
each rank's share of them when several processes train together."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from proxylessnas.data.cutout import apply_cutout, draw_centres
from proxylessnas.data.dataset import Dataset, Images, ImageSet

Batch = tuple[torch.Tensor, torch.Tensor]


def default_padding(resolution: int) -> int:
    """Crop padding: 4 pixels at 32x32 (the CIFAR recipe), scaled with the resolution."""
    return max(1, round(4 * resolution / 32))


def augment_batch(
    images: torch.Tensor,
    offsets_y: torch.Tensor,
    offsets_x: torch.Tensor,
    flips: torch.Tensor,
    padding: int,
) -> torch.Tensor:
    """Random crop with zero padding plus horizontal flip, for a whole batch at once.

    ``images`` is uint8 (B, C, H, W); image b is padded by ``padding`` zeros on every side,
    cut at (``offsets_y[b]``, ``offsets_x[b]``) in [0, 2 * padding], and mirrored if
    ``flips[b]``. One gather over flat pixel indices does both, so there is no per-image
    Python loop (the rejected alternative, looping torchvision transforms, is ~50x slower).
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    padded_width = width + 2 * padding
    device = images.device
    rows = offsets_y.to(device)[:, None] + torch.arange(height, device=device)  # (B, H)
    cols = offsets_x.to(device)[:, None] + torch.arange(width, device=device)  # (B, W)
    cols = torch.where(flips.to(device)[:, None], cols.flip(1), cols)
    flat = (rows[:, :, None] * padded_width + cols[:, None, :]).view(batch, 1, height * width)
    out = padded.view(batch, channels, -1).gather(2, flat.expand(batch, channels, -1))
    return out.view(batch, channels, height, width)


class BatchIterator:
    """Batches of (normalised float images, int64 labels), exactly reproducible.

    ``cutout`` > 0 adds a cut-out square of that side (:mod:`~proxylessnas.data.cutout`) to every
    augmented image, after normalisation. The order and augmentation of epoch ``e`` depend only
    on (``seed``, ``e``): they are drawn
    up front from ``numpy.random.default_rng([seed, e])``, so ``epoch(e, start_step=k)``
    yields exactly the batches k, k+1, ... of ``epoch(e)``, on any device. ``images`` is a
    uint8 tensor (N, C, H, W), moved to ``device`` once, or an ``ImageFiles`` list, decoded
    by ``num_workers`` DataLoader workers; both paths then augment and normalise whole
    batches on ``device``.

    ``cycle()`` is an endless stream (for the architecture-validation batches) whose position
    is saved by ``state_dict()`` and restored by ``load_state_dict()``.
    """

    def __init__(
        self,
        images: Images,
        labels: torch.Tensor,
        batch_size: int,
        *,
        augment: bool,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        device: str | torch.device = "cpu",
        horizontal_flip: bool = True,
        padding: int | None = None,
        num_workers: int | None = None,
        cutout: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.device = torch.device(device)
        self.streamed = not isinstance(images, torch.Tensor)
        self.images = images if self.streamed else images.to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        self.batch_size = batch_size
        self.augment = augment
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.horizontal_flip = horizontal_flip
        resolution = images.resolution if self.streamed else images.shape[-1]
        self.resolution = resolution
        self.cutout = cutout if augment else 0
        self.padding = default_padding(resolution) if padding is None else padding
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        # x_norm = (x / 255 - mean) / std = x * scale + shift
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        self._position = (0, 0)

    @classmethod
    def for_dataset(cls, dataset: Dataset, part: ImageSet, batch_size: int, **options) -> BatchIterator:
        """An iterator over ``part`` with the dataset's mean, std and flip default."""
        options.setdefault("horizontal_flip", dataset.horizontal_flip)
        return cls(part.images, part.labels, batch_size, mean=dataset.mean, std=dataset.std, **options)

    def __len__(self) -> int:
        """Steps per epoch."""
        count = len(self.labels)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def _plan(self, epoch: int) -> dict[str, torch.Tensor]:
        count = self.num_samples
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        plan = {"order": torch.from_numpy(order)}
        if self.augment:
            plan["offsets_y"] = torch.from_numpy(rng.integers(0, 2 * self.padding + 1, count))
            plan["offsets_x"] = torch.from_numpy(rng.integers(0, 2 * self.padding + 1, count))
            flips = rng.random(count) < 0.5
            plan["flips"] = torch.from_numpy(flips & self.horizontal_flip)
            if self.cutout:  # drawn last: the crops and flips stay those of a run without cutout
                plan["cut_y"], plan["cut_x"] = draw_centres(rng, count, self.resolution, self.resolution)
        return plan

    def _finish(self, images: torch.Tensor, plan: dict, rows: slice) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.augment:
            images = augment_batch(
                images,
                plan["offsets_y"][rows],
                plan["offsets_x"][rows],
                plan["flips"][rows],
                self.padding,
            )
        images = torch.addcmul(self._shift, images.float(), self._scale)
        if self.cutout:
            images = apply_cutout(images, plan["cut_y"][rows], plan["cut_x"][rows], self.cutout)
        return images

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch``, starting at step ``start_step``."""
        steps = len(self)
        if not 0 <= start_step <= steps:
            raise ValueError(f"start_step {start_step} outside 0..{steps}")
        plan = self._plan(epoch)
        order = plan["order"]
        slices = [
            slice(step * self.batch_size, (step + 1) * self.batch_size) for step in range(start_step, steps)
        ]
        if self.streamed:
            yield from self._streamed_epoch(plan, slices)
            return
        order_on_device = order.to(self.device)
        for rows in slices:
            indices = order_on_device[rows]
            yield self._finish(self.images[indices], plan, rows), self.labels[indices]

    def _streamed_epoch(self, plan: dict, slices: list[slice]) -> Iterator[Batch]:
        order = plan["order"]
        loader = torch.utils.data.DataLoader(
            self.images,
            batch_sampler=[order[rows].tolist() for rows in slices],
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for rows, images in zip(slices, loader):
            yield self._finish(images, plan, rows), self.labels[order[rows].to(self.device)]

    def __iter__(self) -> Iterator[Batch]:
        """One pass over epoch 0 (use ``epoch(e)`` in training loops)."""
        return self.epoch(0)

    def cycle(self) -> Iterator[Batch]:
        """Endless batches from the saved position, epoch after epoch.

        The position is advanced before each batch is handed out, so ``state_dict()`` taken
        after consuming a batch resumes with the next one.
        """
        steps = len(self)
        if steps == 0:
            raise ValueError("cannot cycle over an empty iterator")
        while True:
            epoch, step = self._position
            for batch in self.epoch(epoch, step):
                step += 1
                self._position = (epoch, step) if step < steps else (epoch + 1, 0)
                yield batch

    def shard(self, rank: int, world_size: int) -> ShardedBatchIterator:
        """Rank ``rank`` of ``world_size``'s part of these batches (see :class:`ShardedBatchIterator`)."""
        return ShardedBatchIterator.of(self, rank, world_size)

    def state_dict(self) -> dict:
        """Where ``cycle()`` is, plus what must match for resuming to be exact."""
        epoch, step = self._position
        return {
            "epoch": epoch,
            "step": step,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue ``cycle()`` from a saved position (call ``cycle()`` again afterwards)."""
        for key in ("seed", "num_samples", "batch_size"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"iterator state has {key}={state.get(key)}, this iterator "
                    f"{getattr(self, key)}: resuming would not reproduce the same batches"
                )
        self._position = (int(state["epoch"]), int(state["step"]))


class ShardedBatchIterator(BatchIterator):
    """Rank r of W's part of a :class:`BatchIterator`, for in-memory and streamed images alike.

    Every rank draws the same permutation (and augmentation) of the *whole* set from
    (seed, epoch), as one process would, and takes positions r, r + W, r + 2W, ... of it, N // W
    each (the remainder, a different one each epoch, is skipped so every rank runs the same
    number of steps). Step s of all ranks together therefore covers positions
    [s B W, (s + 1) B W) of the permutation: after s steps the job has seen exactly the first
    s B W images, which is what lets a checkpoint resume with another world size
    (step s of W ranks = step s W / W' of W' ranks). Rejected alternative: a fixed split of the
    files per rank (each rank would see the same images every epoch).
    """

    rank: int
    world_size: int

    @classmethod
    def of(cls, batches: BatchIterator, rank: int, world_size: int) -> ShardedBatchIterator:
        sharded = cls.__new__(cls)
        sharded.__dict__.update(batches.__dict__)
        sharded.rank, sharded.world_size = rank, world_size
        return sharded

    def __len__(self) -> int:
        count = self.num_samples // self.world_size
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def _plan(self, epoch: int) -> dict[str, torch.Tensor]:
        plan = super()._plan(epoch)  # the whole set's permutation and augmentation
        positions = torch.arange(self.num_samples // self.world_size) * self.world_size + self.rank
        return {key: value[positions] for key, value in plan.items()}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        """Also accepts a position saved with another world size (rescaled, see the class)."""
        saved_world = int(state.get("world_size", 1))
        step = rescale_step(int(state["step"]), saved_world, self.world_size)
        super().load_state_dict({**state, "step": min(step, len(self))})


def rescale_step(step: int, saved_world_size: int, world_size: int) -> int:
    """The step of a ``world_size`` job that has seen what ``saved_world_size`` ranks saw after
    ``step`` steps: floor(step * W_saved / W) (rounding down repeats at most one global batch)."""
    return step * saved_world_size // world_size
