"""Datasets, the architecture-validation split, and fast resumable batch iterators.

dataset = load_dataset("cifar10:/data/cifar10")
train_part, valid_part = split_validation(dataset, 5000, seed=0)
batches = BatchIterator.for_dataset(dataset, train_part, 256, augment=True, seed=0)
for images, labels in batches.epoch(0): ...
"""

from proxylessnas.data.dataset import Dataset, ImageSet, channel_stats
from proxylessnas.data.images import ImageFiles
from proxylessnas.data.iterator import BatchIterator, augment_batch, default_padding
from proxylessnas.data.sources import load_dataset, parse_spec, synthetic_dataset
from proxylessnas.data.split import split_validation

__all__ = [
    "BatchIterator",
    "Dataset",
    "ImageFiles",
    "ImageSet",
    "augment_batch",
    "channel_stats",
    "default_padding",
    "load_dataset",
    "parse_spec",
    "split_validation",
    "synthetic_dataset",
]
