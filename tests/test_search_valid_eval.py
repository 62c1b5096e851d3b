"""The per-epoch accuracy of the argmax path runs on batch statistics, so its batches must mix the
classes (the validation split is sorted by class: a batch of one class normalises the class
away and reads chance), and be the same batches every epoch."""

from __future__ import annotations

import dataclasses

import torch

from proxylessnas.data import synthetic_dataset
from proxylessnas.runtime.distributed import SINGLE_PROCESS
from proxylessnas.search.build import build_data
from proxylessnas.search.config import SearchConfig


def test_valid_eval_batches_mix_the_classes_and_repeat():
    dataset = synthetic_dataset(160, num_classes=4, resolution=8)
    by_class = dataset.train.subset(dataset.train.labels.argsort(stable=True))
    dataset = dataclasses.replace(dataset, train=by_class)
    config = SearchConfig.from_dict({"data": {"valid_size": 0.5, "eval_batch_size": 20}})
    data = build_data(config, dataset, SINGLE_PROCESS, torch.device("cpu"))
    first = [labels for _, labels in data.valid_eval.epoch(0)]
    again = [labels for _, labels in data.valid_eval.epoch(0)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(len(labels.unique()) > 1 for labels in first)
