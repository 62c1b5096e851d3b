"""Dataset sources: every format is detected, decoded and cached; bad input is explained."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from proxylessnas.data import load_dataset, parse_spec
from proxylessnas.data.cifar import write_binary_batch, write_pickle_batch
from proxylessnas.data.idx import read_idx, write_idx
from proxylessnas.errors import ProxylessError

CIFAR_TREE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def _images(count: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def _write_cifar_batches(folder: Path, binary: bool, per_batch: int = 20) -> dict:
    folder.mkdir(parents=True)
    written = {"train": [], "test": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        images = _images(per_batch, (3, 32, 32), seed)
        labels = [i % 10 for i in range(per_batch)]
        if binary:
            write_binary_batch(folder / f"{name}.bin", images, labels)
        else:
            write_pickle_batch(folder / name, images, labels)
        written["test" if name == "test_batch" else "train"].append(images)
    return {k: np.concatenate(v) for k, v in written.items()}


@pytest.mark.parametrize("binary", [False, True], ids=["pickle", "binary"])
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_cifar_batches_detected_and_decoded(tmp_path, binary, nested):
    inner = "cifar-10-batches-bin" if binary else "cifar-10-batches-py"
    folder = tmp_path / "cifar" / inner if nested else tmp_path / "cifar"
    written = _write_cifar_batches(folder, binary)
    dataset = load_dataset(f"cifar10:{tmp_path / 'cifar'}", cache=False)
    assert dataset.num_classes == 10 and dataset.class_names[0] == "airplane"
    assert dataset.train_images.shape == (100, 3, 32, 32)
    assert dataset.train_images.dtype == torch.uint8
    assert torch.equal(dataset.train_images, torch.from_numpy(written["train"]))
    assert torch.equal(dataset.test_images, torch.from_numpy(written["test"]))
    assert dataset.train_labels.tolist() == [i % 10 for i in range(20)] * 5
    assert dataset.horizontal_flip and len(dataset.mean) == 3


def _write_tree(root: Path, classes: list[str], per_class: int, size: int = 8, mode="RGB"):
    for class_index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            value = 20 * class_index + i
            Image.new(mode, (size, size), value if mode == "L" else (value, 0, 255 - value)).save(
                root / name / f"{i:03d}.png"
            )


def test_cifar_image_tree(tmp_path):
    _write_tree(tmp_path / "train", ["cat", "dog"], 3)
    _write_tree(tmp_path / "test", ["cat", "dog"], 2)
    dataset = load_dataset(f"cifar10:{tmp_path}", resolution=8, cache_dir=tmp_path / "cache")
    assert dataset.class_names == ("cat", "dog")
    assert dataset.train_images.shape == (6, 3, 8, 8)
    assert dataset.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert dataset.test_labels.tolist() == [0, 0, 1, 1]
    assert dataset.train_images[4, 0, 0, 0].item() == 21  # dog, image 1: red = 20 + 1


def test_cifar_unrecognised_folder_explains_layouts(tmp_path):
    (tmp_path / "random.txt").write_text("hello")
    with pytest.raises(ProxylessError) as error:
        load_dataset(f"cifar10:{tmp_path}")
    assert error.value.where == str(tmp_path)
    assert "data_batch_1" in error.value.fix and "train/<class>" in error.value.fix


def test_cifar_truncated_binary_batch(tmp_path):
    _write_cifar_batches(tmp_path / "c", binary=True)
    path = tmp_path / "c" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ProxylessError, match="truncated") as error:
        load_dataset(f"cifar10:{tmp_path / 'c'}", cache=False)
    assert error.value.where == str(path)


def test_cifar_pickle_refuses_code(tmp_path):
    _write_cifar_batches(tmp_path / "c", binary=False)
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "c" / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(ProxylessError, match="refusing to load"):
        load_dataset(f"cifar10:{tmp_path / 'c'}", cache=False)


def _write_idx_folder(folder: Path, gz: bool, train: int = 30, test: int = 10) -> dict:
    folder.mkdir(parents=True)
    ext = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": _images(train, (28, 28), 1),
        "train-labels-idx1-ubyte": np.arange(train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": _images(test, (28, 28), 2),
        "t10k-labels-idx1-ubyte": np.arange(test, dtype=np.uint8) % 10,
    }
    for stem, array in arrays.items():
        write_idx(folder / (stem + ext), array)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_folder(tmp_path, gz, name):
    arrays = _write_idx_folder(tmp_path / "idx", gz)
    dataset = load_dataset(f"{name}:{tmp_path / 'idx'}", cache_dir=tmp_path / "cache")
    assert dataset.channels == 1 and dataset.resolution == 28
    assert torch.equal(dataset.train_images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert dataset.test_labels.tolist() == list(range(10))
    assert not dataset.horizontal_flip
    assert (dataset.class_names[0] == "t-shirt/top") == (name == "fashion-mnist")


@pytest.mark.parametrize("cut", [3, 10, 100])
def test_idx_truncated(tmp_path, cut):
    _write_idx_folder(tmp_path / "idx", gz=False)
    path = tmp_path / "idx" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:cut] if cut < 16 else path.read_bytes()[:-cut])
    with pytest.raises(ProxylessError) as error:
        load_dataset(f"mnist:{tmp_path / 'idx'}", cache=False)
    assert error.value.where == str(path) and error.value.fix


def test_idx_truncated_gzip(tmp_path):
    _write_idx_folder(tmp_path / "idx", gz=True)
    path = tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ProxylessError, match="gzip"):
        read_idx(path)


def test_idx_missing_file_listed(tmp_path):
    _write_idx_folder(tmp_path / "idx", gz=False)
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ProxylessError, match="idx files") as error:
        load_dataset(f"mnist:{tmp_path / 'idx'}", cache=False)
    assert "t10k-labels-idx1-ubyte" in error.value.fix


def test_imagefolder_train_test_and_resize(tmp_path):
    _write_tree(tmp_path / "train", ["a", "b", "c"], 2, size=40)
    _write_tree(tmp_path / "test", ["a", "c"], 1, size=40)
    dataset = load_dataset(f"imagefolder:{tmp_path}?resolution=16", cache=False)
    assert dataset.train_images.shape == (6, 3, 16, 16) and dataset.resolution == 16
    assert dataset.test_labels.tolist() == [0, 2]


def test_imagefolder_grey_and_nonsquare(tmp_path):
    for i in range(4):
        (tmp_path / "only" / f"k{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (30, 20), 100 + i).save(tmp_path / "only" / f"k{i % 2}" / f"{i}.jpg")
    dataset = load_dataset(f"imagefolder:{tmp_path / 'only'}", cache=False, resolution=10)
    assert dataset.channels == 1 and dataset.train_images.shape[1:] == (1, 10, 10)
    assert len(dataset.train) + len(dataset.test) == 4 and len(dataset.test) == 2  # 1 per class


def test_imagefolder_seeded_split_is_stable(tmp_path):
    _write_tree(tmp_path, ["a", "b"], 10)
    first = load_dataset(f"imagefolder:{tmp_path}?seed=3", cache=False)
    again = load_dataset(f"imagefolder:{tmp_path}?seed=3", cache=False)
    other = load_dataset(f"imagefolder:{tmp_path}?seed=4", cache=False)
    assert torch.equal(first.test_images, again.test_images)
    assert not torch.equal(first.test_images, other.test_images)
    assert first.test.class_counts(2).tolist() == [2, 2]


def test_imagefolder_streamed(tmp_path):
    _write_tree(tmp_path / "train", ["a", "b"], 5, size=12)
    _write_tree(tmp_path / "test", ["a", "b"], 2, size=12)
    memory = load_dataset(f"imagefolder:{tmp_path}", resolution=12, cache=False)
    streamed = load_dataset(f"imagefolder:{tmp_path}?stream=1&resolution=12")
    assert streamed.train.streamed and not memory.train.streamed
    assert torch.equal(torch.stack([streamed.train_images[i] for i in range(10)]),
                       memory.train_images)  # fmt: skip


def test_imagefolder_broken_image(tmp_path):
    _write_tree(tmp_path / "train", ["a"], 2)
    _write_tree(tmp_path / "test", ["a"], 1)
    (tmp_path / "train" / "a" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ProxylessError, match="cannot decode") as error:
        load_dataset(f"imagefolder:{tmp_path}", cache=False)
    assert error.value.where.endswith("bad.png")


def test_imagefolder_empty(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "test" / "a").mkdir(parents=True)
    with pytest.raises(ProxylessError, match="no images"):
        load_dataset(f"imagefolder:{tmp_path}", cache=False)


def test_cache_hit_and_invalidation(tmp_path):
    _write_idx_folder(tmp_path / "idx", gz=True)
    cache = tmp_path / "cache"
    load_dataset(f"mnist:{tmp_path / 'idx'}", cache_dir=cache)
    files = list(cache.glob("*.pt"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))
    load_dataset(f"mnist:{tmp_path / 'idx'}", cache_dir=cache)
    assert list(cache.glob("*.pt")) == files  # hit: same key
    load_dataset(f"mnist:{tmp_path / 'idx'}", cache_dir=cache, resolution=14)
    assert len(list(cache.glob("*.pt"))) == 2  # resolution is part of the key
    files[0].write_bytes(b"garbage")  # a corrupt cache file is rebuilt, not trusted
    with pytest.warns(UserWarning, match="unreadable"):
        dataset = load_dataset(f"mnist:{tmp_path / 'idx'}", cache_dir=cache)
    assert dataset.train_images.shape == (30, 1, 28, 28)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    _write_idx_folder(tmp_path / "idx", gz=False)
    monkeypatch.setenv("PROXYLESS_CACHE", str(tmp_path / "env-cache"))
    load_dataset(f"mnist:{tmp_path / 'idx'}")
    assert len(list((tmp_path / "env-cache" / "datasets").glob("mnist-*.pt"))) == 1


def test_demo_is_bundled_and_balanced():
    dataset = load_dataset("demo")
    assert dataset.train_images.shape == (5000, 1, 28, 28)
    assert dataset.train.class_counts(10).tolist() == [500] * 10
    assert dataset.test.class_counts(10).tolist() == [100] * 10
    assert dataset.class_names[-1] == "ankle boot"


def test_synthetic_is_seeded_and_learnable():
    first = load_dataset("synthetic:200")
    assert torch.equal(first.train_images, load_dataset("synthetic:200").train_images)
    assert not torch.equal(first.train_images, load_dataset("synthetic:200?seed=1").train_images)
    assert len(first.train) == 200 and len(first.test) == 50
    # class means are far apart compared with the noise: a nearest-mean classifier works
    images = first.train_images.float().flatten(1)
    centres = torch.stack([images[first.train_labels == k].mean(0) for k in range(10)])
    test = first.test_images.float().flatten(1)
    accuracy = (torch.cdist(test, centres).argmin(1) == first.test_labels).float().mean()
    assert accuracy > 0.9


def test_limit_per_class():
    dataset = load_dataset("synthetic:200", limit_per_class=3)
    assert dataset.train.class_counts(10).tolist() == [3] * 10


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nosuch", "unknown dataset"),
        ("cifar10", "needs a folder"),
        ("mnist", "needs a folder"),
        ("cifar10:/no/such/folder", "not found"),
        ("synthetic:abc", "bad synthetic size"),
        ("synthetic:100?colour=1", "unknown dataset option"),
        ("synthetic:100?resolution=big", "resolution=big is not an input side"),
        ("synthetic:100?limit_per_class=-1", "limit_per_class=-1 is not a positive integer"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ProxylessError, match=message) as error:
        load_dataset(spec)
    assert error.value.line().startswith("error: ") and error.value.fix


def test_parse_spec():
    assert parse_spec("imagefolder:/a:b/c?resolution=64&stream=off") == (
        "imagefolder", "/a:b/c", {"resolution": 64, "stream": False}
    )  # fmt: skip
    assert parse_spec("Fashion-MNIST") == ("fashion-mnist", None, {})


@pytest.mark.skipif(not CIFAR_TREE.is_dir(), reason=f"{CIFAR_TREE} not present")
def test_real_cifar_tree_subset(tmp_path):
    dataset = load_dataset(f"cifar10:{CIFAR_TREE}", limit_per_class=2, cache_dir=tmp_path)
    assert dataset.class_names == (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    assert dataset.train_images.shape == (20, 3, 32, 32)
    assert dataset.test.class_counts(10).tolist() == [2] * 10
    assert 20 < dataset.train_images.float().mean() < 235
