"""Architecture-validation split: held out of train, class-balanced, seeded."""

from __future__ import annotations

import pytest
import torch

from proxylessnas.data import ImageSet, load_dataset, split_validation
from proxylessnas.errors import ProxylessError


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic:1000")


def test_split_is_disjoint_and_complete(dataset):
    train_part, valid_part = split_validation(dataset, 200, seed=0)
    assert len(train_part) == 800 and len(valid_part) == 200
    rows = torch.cat([train_part.images, valid_part.images]).flatten(1)
    assert len(torch.unique(rows, dim=0)) == 1000  # nothing lost, nothing duplicated


def test_split_is_class_balanced(dataset):
    _, valid_part = split_validation(dataset, 0.1, seed=0)
    assert valid_part.class_counts(10).tolist() == [10] * 10


def test_split_proportional_on_unbalanced_data():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    part = ImageSet(torch.zeros(100, 1, 2, 2, dtype=torch.uint8), labels)
    _, valid_part = split_validation(part, 21, seed=0)
    assert valid_part.class_counts(3).tolist() == [13, 6, 2]  # 12.6, 6.3, 2.1 -> largest remainder


def test_split_is_seeded(dataset):
    _, first = split_validation(dataset, 100, seed=1)
    _, again = split_validation(dataset, 100, seed=1)
    _, other = split_validation(dataset, 100, seed=2)
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)


@pytest.mark.parametrize("size", [0, 1000, 5000, 0.0, 1.0, -0.5])
def test_split_bad_sizes(dataset, size):
    with pytest.raises(ProxylessError):
        split_validation(dataset, size)
