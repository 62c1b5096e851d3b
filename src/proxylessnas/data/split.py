"""The architecture-validation split: a seeded, class-balanced part held out of training."""

from __future__ import annotations

import numpy as np
import torch

from proxylessnas.data.dataset import Dataset, ImageSet
from proxylessnas.errors import ProxylessError


def _quotas(counts: np.ndarray, n_valid: int) -> np.ndarray:
    """Per-class sizes proportional to ``counts`` that sum to ``n_valid`` (largest remainder)."""
    exact = n_valid * counts / counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    order = np.lexsort((np.arange(len(counts)), -(exact - quotas)))  # biggest remainder first
    for k in order[: n_valid - quotas.sum()]:
        quotas[k] += 1
    return np.minimum(quotas, counts)


def split_validation(
    dataset: Dataset | ImageSet, valid_size: int | float = 0.1, *, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """Split the training images into (train_part, valid_part).

    ``valid_size`` is a count (int) or a fraction of the training set (float in (0, 1)).
    Each class gives the same share of its images (exactly equal counts on a balanced set
    whose size divides evenly), chosen by a permutation seeded with ``seed`` only, so the
    split is identical on every run and machine. ProxylessNAS updates the architecture on
    this held-out part and the weights on the rest. Both parts keep the original order.
    """
    images = dataset.train if isinstance(dataset, Dataset) else dataset
    total = len(images)
    if isinstance(valid_size, float):
        if not 0.0 < valid_size < 1.0:
            raise ProxylessError(
                f"validation fraction {valid_size} is not in (0, 1)",
                "split_validation",
                "give a fraction such as 0.1 or a count such as 5000",
            )
        n_valid = round(total * valid_size)
    else:
        n_valid = int(valid_size)
    if not 0 < n_valid < total:
        raise ProxylessError(
            f"validation size {n_valid} must be between 1 and {total - 1}",
            "split_validation",
            f"the training set has {total} images",
        )
    labels = images.labels.numpy()
    num_classes = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=num_classes)
    quotas = _quotas(counts, n_valid)
    rng = np.random.default_rng(seed)
    valid_mask = np.zeros(total, dtype=bool)
    for k in range(num_classes):
        members = np.flatnonzero(labels == k)
        valid_mask[members[rng.permutation(len(members))[: quotas[k]]]] = True
    valid_idx = torch.from_numpy(np.flatnonzero(valid_mask))
    train_idx = torch.from_numpy(np.flatnonzero(~valid_mask))
    return images.subset(train_idx), images.subset(valid_idx)
