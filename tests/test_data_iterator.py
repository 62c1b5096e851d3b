"""Batch iterator: vectorised augmentation, determinism, exact resume, endless cycling."""

from __future__ import annotations

import pytest
import torch

from proxylessnas.data import (
    BatchIterator,
    ImageFiles,
    augment_batch,
    default_padding,
    load_dataset,
    split_validation,
)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic:300")


def _iterator(dataset, **options):
    options = {"augment": True, "seed": 7, **options}
    return BatchIterator.for_dataset(dataset, dataset.train, 32, **options)


def _collect(batches):
    return [(x.clone(), y.clone()) for x, y in batches]


def _same(first, second):
    return len(first) == len(second) and all(
        torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(first, second)
    )


def test_flip_really_flips():
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).view(2, 3, 4, 5)
    zeros = torch.full((2,), 2)  # offset == padding: no shift
    out = augment_batch(images, zeros, zeros, torch.tensor([True, False]), padding=2)
    assert torch.equal(out[0], images[0].flip(-1))
    assert torch.equal(out[1], images[1])


def test_crop_pads_with_zeros():
    images = torch.full((3, 1, 6, 6), 200, dtype=torch.uint8)
    offsets_y = torch.tensor([0, 4, 2])
    offsets_x = torch.tensor([0, 4, 2])
    out = augment_batch(images, offsets_y, offsets_x, torch.zeros(3, dtype=torch.bool), padding=2)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert (out[0, 0, :2] == 0).all() and (out[0, 0, :, :2] == 0).all()  # shifted down-right
    assert (out[0, 0, 2:, 2:] == 200).all()
    assert (out[1, 0, 4:] == 0).all() and (out[1, 0, :4, :4] == 200).all()  # shifted up-left
    assert torch.equal(out[2], images[2])  # centred crop is the identity


def test_crop_moves_content():
    images = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
    out = augment_batch(images, torch.tensor([2]), torch.tensor([1]), torch.tensor([False]), 1)
    # offset (2, 1) with padding 1: row i comes from row i + 1, column j from column j
    assert out[0, 0, :3].tolist() == images[0, 0, 1:].tolist()
    assert out[0, 0, 3].tolist() == [0, 0, 0, 0]


def test_padding_scales_with_resolution():
    assert [default_padding(r) for r in (16, 28, 32, 64, 224)] == [2, 4, 4, 8, 28]


def test_batches_are_normalised_and_sized(dataset):
    iterator = _iterator(dataset, augment=False, shuffle=False)
    assert len(iterator) == 10  # ceil(300 / 32)
    batches = _collect(iterator.epoch(0))
    assert [len(y) for _, y in batches] == [32] * 9 + [12]
    images = torch.cat([x for x, _ in batches])
    assert images.dtype == torch.float32
    mean = images.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-3)  # dataset stats were measured
    assert torch.allclose(images.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    assert torch.equal(torch.cat([y for _, y in batches]), dataset.train_labels)
    assert len(_iterator(dataset, drop_last=True)) == 9


def test_epoch_depends_only_on_seed_and_epoch(dataset):
    first = _collect(_iterator(dataset).epoch(3))
    assert _same(first, _collect(_iterator(dataset).epoch(3)))
    assert not _same(first, _collect(_iterator(dataset).epoch(4)))
    assert not _same(first, _collect(_iterator(dataset, seed=8).epoch(3)))
    labels = torch.cat([y for _, y in first])
    assert sorted(labels.tolist()) == sorted(dataset.train_labels.tolist())  # a permutation


@pytest.mark.parametrize("start_step", [0, 1, 4, 9, 10])
def test_resume_mid_epoch_is_exact(dataset, start_step):
    full = _collect(_iterator(dataset).epoch(2))
    resumed = _collect(_iterator(dataset).epoch(2, start_step=start_step))
    assert _same(full[start_step:], resumed)


def test_flip_flag_off_keeps_crops(dataset):
    flipped = _collect(_iterator(dataset, horizontal_flip=True).epoch(0))
    plain = _collect(_iterator(dataset, horizontal_flip=False).epoch(0))
    assert not _same(flipped, plain)
    assert all(torch.equal(y1, y2) for (_, y1), (_, y2) in zip(flipped, plain))


def test_cycle_state_round_trip(dataset):
    reference = _iterator(dataset)
    stream = reference.cycle()
    expected = [next(stream) for _ in range(25)]  # crosses two epoch boundaries
    assert reference.state_dict()["epoch"] == 2 and reference.state_dict()["step"] == 5

    source = _iterator(dataset)
    stream = source.cycle()
    for _ in range(13):
        next(stream)
    saved = source.state_dict()
    resumed = _iterator(dataset)
    resumed.load_state_dict(saved)
    stream = resumed.cycle()
    rest = [next(stream) for _ in range(12)]
    assert _same(expected[13:], rest)


def test_load_state_dict_rejects_other_data(dataset):
    state = _iterator(dataset).state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator.for_dataset(dataset, dataset.train, 16, augment=True, seed=7).load_state_dict(state)


def test_streamed_files_match_in_memory(tmp_path, dataset):
    from PIL import Image

    part = dataset.train.subset(torch.arange(40))
    paths = []
    for i, image in enumerate(part.images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(paths[-1])
    files = ImageFiles(paths, resolution=16, channels=3)
    options = {"augment": True, "seed": 1, "mean": dataset.mean, "std": dataset.std}
    memory = _collect(BatchIterator(part.images, part.labels, 8, **options).epoch(1, 2))
    streamed = _collect(BatchIterator(files, part.labels, 8, num_workers=0, **options).epoch(1, 2))
    assert _same(memory, streamed)
    with_workers = _collect(BatchIterator(files, part.labels, 8, num_workers=2, **options).epoch(1))
    assert _same(memory, with_workers[2:])


def test_iterate_a_validation_split(dataset):
    train_part, valid_part = split_validation(dataset, 50, seed=0)
    iterator = BatchIterator.for_dataset(dataset, valid_part, 64, augment=False, seed=0)
    assert len(iterator) == 1 and len(next(iter(iterator))[1]) == 50
