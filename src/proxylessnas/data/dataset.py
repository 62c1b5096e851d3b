"""The ``Dataset`` and ``ImageSet`` containers every source produces."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Union

import torch

if TYPE_CHECKING:
    from proxylessnas.data.images import ImageFiles

Images = Union[torch.Tensor, "ImageFiles"]
"""Either a decoded uint8 tensor (N, C, H, W) in memory, or image files decoded on the fly."""


def take(images: Images, indices: torch.Tensor) -> Images:
    """Rows ``indices`` of an in-memory tensor or of an ``ImageFiles`` list."""
    if isinstance(images, torch.Tensor):
        return images[indices]
    return images.subset(indices)


@dataclass(frozen=True)
class ImageSet:
    """Images with their integer labels (one part: train, test, validation...)."""

    images: Images
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def streamed(self) -> bool:
        """True when images are decoded from files batch by batch instead of held in memory."""
        return not isinstance(self.images, torch.Tensor)

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The rows ``indices`` (a 1-D int64 tensor), in that order."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        return ImageSet(take(self.images, indices), self.labels[indices])

    def class_counts(self, num_classes: int) -> torch.Tensor:
        """How many images each class has."""
        return torch.bincount(self.labels, minlength=num_classes)


@dataclass(frozen=True)
class Dataset:
    """A classification dataset: train and test images plus what a model needs to know.

    ``mean``/``std`` are per channel on the 0..1 scale, measured on the training images.
    ``horizontal_flip`` says whether mirrored images are still valid samples (True for
    natural images, False for digits); the batch iterator uses it as its default.
    """

    name: str
    class_names: tuple[str, ...]
    channels: int
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: ImageSet
    test: ImageSet
    horizontal_flip: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_images(self) -> Images:
        return self.train.images

    @property
    def train_labels(self) -> torch.Tensor:
        return self.train.labels

    @property
    def test_images(self) -> Images:
        return self.test.images

    @property
    def test_labels(self) -> torch.Tensor:
        return self.test.labels

    def with_parts(self, train: ImageSet, test: ImageSet | None = None) -> Dataset:
        """A copy with other train (and optionally test) parts, same metadata."""
        return replace(self, train=train, test=self.test if test is None else test)

    def summary(self) -> str:
        """One line for logs."""
        kind = "streamed" if self.train.streamed else "in memory"
        return (
            f"{self.name}: {len(self.train)} train / {len(self.test)} test, "
            f"{self.num_classes} classes, {self.channels}x{self.resolution}x{self.resolution}, "
            f"{kind}"
        )


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple, tuple]:
    """Per-channel mean and std (0..1 scale) of uint8 images (N, C, H, W), in chunks."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += block.sum(dim=(0, 2, 3))
        squares += block.square().sum(dim=(0, 2, 3))
        count += block.numel() // channels
    if count == 0:
        return (0.5,) * channels, (0.25,) * channels
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)
