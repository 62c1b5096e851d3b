"""``load_dataset(spec)``: turn a dataset spec string into a ``Dataset``.

Spec grammar: ``NAME[:PATH][?key=value&key=value]``, for example ``cifar10:/data/cifar``,
``fashion-mnist``, ``imagefolder:/data/flowers?resolution=64``, ``synthetic:256``, ``demo``.
Options (also keyword arguments of ``load_dataset``): ``resolution``, ``limit_per_class``,
``stream`` (image folders), ``seed`` (synthetic data, folder split).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from proxylessnas import arguments
from proxylessnas.data import cifar, idx, images
from proxylessnas.data.cache import cache_key, cached
from proxylessnas.data.dataset import Dataset, ImageSet, channel_stats
from proxylessnas.errors import ProxylessError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
DEMO_FILE = "fashion_mnist_demo.npz"
STREAM_MIN_IMAGES = 50_000  # image folders bigger than this are streamed from disk
STREAM_MIN_RESOLUTION = 65  # ... and so are those decoded above 64x64
SYNTHETIC_MAX_PIXELS = 2**28  # values in all synthetic images (train + test): 1 GB of float32 noise
FOLDER_TEST_FRACTION = 0.2  # imagefolder:DIR without train/ and test/ sub-folders
SPECS = "cifar10:DIR, fashion-mnist[:DIR], mnist:DIR, imagefolder:DIR, demo, synthetic[:N]"
_OPTIONS = {"resolution": arguments.resolution, "limit_per_class": arguments.positive_int,
            "stream": arguments.boolean, "seed": arguments.seed}


def parse_spec(spec: str) -> tuple[str, str | None, dict]:
    """(name, path or None, options) from ``NAME[:PATH][?key=value&...]``."""
    options: dict = {}
    body = spec.strip()
    if "?" in body:
        body, query = body.rsplit("?", 1)
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            if key not in _OPTIONS:
                raise ProxylessError(
                    f"unknown dataset option '{key}'", spec, f"use one of {sorted(_OPTIONS)}"
                )
            options[key] = _OPTIONS[key].parse(value, spec, key)
    name, _, path = body.partition(":")
    return name.strip().lower(), (path or None), options


def load_dataset(
    spec: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    resolution: int | None = None,
    limit_per_class: int | None = None,
    stream: bool | None = None,
    cache: bool = True,
) -> Dataset:
    """Load the dataset named by ``spec`` (see the module docstring for the grammar).

    Decoded small-image sets are cached as uint8 tensors in ``cache_dir`` (default
    ``$PROXYLESS_CACHE`` or ``~/.cache/proxylessnas/datasets``); ``cache=False`` skips it.
    ``limit_per_class`` keeps the first N images of each class in train and test (for quick
    runs and tests). Bad specs and unreadable sources raise ``ProxylessError``.
    """
    name, path, options = parse_spec(spec)
    keywords = {"resolution": resolution, "limit_per_class": limit_per_class, "stream": stream}
    for key, value in keywords.items():
        if value is not None:
            options[key] = _OPTIONS[key].check(value, spec, key)
    dataset = _load(name, path, spec, options, {"cache_dir": cache_dir, "cache": cache})
    present = len(dataset.train.labels.unique())
    if present < 2:
        raise ProxylessError(f"the training images are of {present} class(es) only; a classifier needs "
                             "at least two classes", spec, "give images of two or more classes")
    return dataset


def _load(name: str, path: str | None, spec: str, options: dict, common: dict) -> Dataset:
    """The dataset ``name`` at ``path`` with ``options`` (see :func:`load_dataset`)."""
    if name == "cifar10":
        return _load_cifar10(_folder(path, spec), options, **common)
    if name in ("fashion-mnist", "fashion_mnist", "mnist"):
        if path is None and name == "mnist":
            raise ProxylessError("mnist needs a folder", spec, "write mnist:DIR")
        folder = _folder(path or FASHION_MNIST_DIR, spec, install_hint=name != "mnist")
        return _load_idx(name.replace("_", "-"), folder, options, **common)
    if name == "imagefolder":
        return _load_imagefolder(_folder(path, spec), options, **common)
    if name == "demo":
        return _load_demo(options)
    if name == "synthetic":
        return synthetic_dataset(_count(path, spec), **options)
    raise ProxylessError(f"unknown dataset '{name}'", spec, f"use one of {SPECS}")


def _folder(path: str | None, spec: str, install_hint: bool = False) -> Path:
    if not path:
        raise ProxylessError("dataset spec needs a folder", spec, "write NAME:DIR")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        fix = "check the path"
        if install_hint:
            fix += " or install it: apt-get install dataset-fashion-mnist"
        what = "dataset folder not found" if not folder.exists() else "dataset path is not a folder"
        raise ProxylessError(what, str(folder), fix)
    return folder.resolve()


def _count(text: str | None, spec: str) -> int:
    if text is None:
        return 1000
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 10:
        raise ProxylessError(
            f"bad synthetic size '{text}'", spec, "write synthetic:N with N >= 10 training images"
        )
    return count


def _limit(images_: np.ndarray, labels: np.ndarray, per_class: int | None):
    if per_class is None:
        return images_, labels
    keep = np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in np.unique(labels)])
    keep.sort()
    return images_[keep], labels[keep]


def _resize(images_: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) to ``resolution`` once at load time (antialiased bilinear)."""
    if resolution is None or images_.shape[-1] == resolution == images_.shape[-2]:
        return images_
    out = torch.empty((*images_.shape[:2], resolution, resolution), dtype=torch.uint8)
    for start in range(0, len(images_), 2048):
        block = images_[start : start + 2048].float()
        block = F.interpolate(block, size=(resolution, resolution), mode="bilinear", antialias=True)
        out[start : start + 2048] = block.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _arrays_record(parts: dict, class_names, options: dict) -> dict:
    """Numpy parts -> the cached record: limited, resized uint8 tensors plus statistics."""
    record: dict = {"class_names": list(class_names)}
    for split in ("train", "test"):
        array, labels = _limit(
            parts[f"{split}_images"], parts[f"{split}_labels"], options.get("limit_per_class")
        )
        tensor = torch.from_numpy(np.array(array, copy=True))  # idx buffers are read-only
        record[f"{split}_images"] = _resize(tensor, options.get("resolution"))
        record[f"{split}_labels"] = torch.from_numpy(labels.astype(np.int64))
    mean, std = channel_stats(record["train_images"])
    record["mean"], record["std"] = list(mean), list(std)
    return record


def _to_dataset(name: str, record: dict, horizontal_flip: bool) -> Dataset:
    train = ImageSet(record["train_images"], record["train_labels"])
    test = ImageSet(record["test_images"], record["test_labels"])
    return Dataset(
        name=name,
        class_names=tuple(record["class_names"]),
        channels=int(record["train_images"].shape[1]),
        resolution=int(record["train_images"].shape[-1]),
        mean=tuple(record["mean"]),
        std=tuple(record["std"]),
        train=train,
        test=test,
        horizontal_flip=horizontal_flip,
    )


def _load_cifar10(folder: Path, options: dict, cache_dir, cache: bool) -> Dataset:
    found = cifar.detect_layout(folder)
    if found is None:
        raise ProxylessError(
            "no CIFAR-10 layout recognised",
            str(folder),
            "point to the folder with data_batch_1..5 and test_batch (python version), "
            "data_batch_1.bin..test_batch.bin (binary version), or train/<class>/*.png and "
            "test/<class>/*.png",
        )
    layout, root = found
    if layout == "tree":
        # 60k images of 32x32 are 184 MB: always worth holding in memory
        options = {"stream": False, **options}
        return _load_tree(
            "cifar10", root, root / "train", root / "test", options, cache_dir, cache, horizontal_flip=True
        )
    files = cifar.source_files(layout, root)
    description = {
        "source": "cifar10",
        "layout": layout,
        "files": _signature(files),
        "resolution": options.get("resolution"),
        "limit_per_class": options.get("limit_per_class"),
    }

    def build() -> dict:
        parts = cifar.load_batches(layout, root)
        return _arrays_record(parts, parts["class_names"], options)

    record = cached(cache_key(f"cifar10-{layout}", description), build, cache_dir, cache)
    return _to_dataset("cifar10", record, horizontal_flip=True)


def _signature(paths: list[Path]) -> list:
    return images.file_signature([str(p) for p in paths if p.exists()])


def _load_idx(name: str, folder: Path, options: dict, cache_dir, cache: bool) -> Dataset:
    files = idx.find_idx_files(folder)
    if files is None:
        idx.load_idx_folder(folder)  # raises the detailed error
    description = {
        "source": name,
        "files": _signature(list(files.values())),
        "resolution": options.get("resolution"),
        "limit_per_class": options.get("limit_per_class"),
    }
    classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(d) for d in range(10))

    def build() -> dict:
        return _arrays_record(idx.load_idx_folder(folder), classes, options)

    record = cached(cache_key(name, description), build, cache_dir, cache)
    # Mirrored digits are not digits, and Fashion-MNIST photographs every item facing one way.
    return _to_dataset(name, record, horizontal_flip=False)


def _load_imagefolder(folder: Path, options: dict, cache_dir, cache: bool) -> Dataset:
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return _load_tree(
            "imagefolder",
            folder,
            folder / "train",
            folder / "test",
            options,
            cache_dir,
            cache,
            horizontal_flip=True,
        )
    return _load_tree("imagefolder", folder, folder, None, options, cache_dir, cache, horizontal_flip=True)


def _load_tree(
    name: str,
    root: Path,
    train_dir: Path,
    test_dir: Path | None,
    options: dict,
    cache_dir,
    cache: bool,
    horizontal_flip: bool,
) -> Dataset:
    """An image tree: train_dir/<class>/*, and test_dir/<class>/* or a seeded split."""
    limit = options.get("limit_per_class")
    train_paths, train_labels, classes = images.scan_tree(train_dir, None, limit)
    if test_dir is not None:
        test_paths, test_labels, _ = images.scan_tree(test_dir, classes, limit)
    else:
        train_paths, train_labels, test_paths, test_labels = _split_files(
            train_paths, train_labels, options.get("seed", 0)
        )
    resolution = options.get("resolution") or 32
    channels = images.image_channels(train_paths[0])
    total = len(train_paths) + len(test_paths)
    stream = options.get("stream")
    if stream is None:
        stream = total > STREAM_MIN_IMAGES or resolution >= STREAM_MIN_RESOLUTION
    if stream:
        return _streamed_dataset(
            name,
            classes,
            channels,
            resolution,
            train_paths,
            train_labels,
            test_paths,
            test_labels,
            horizontal_flip,
        )
    description = {
        "source": name,
        "root": str(root),
        "resolution": resolution,
        "channels": channels,
        "seed": options.get("seed", 0),
        "train": images.file_signature(train_paths),
        "test": images.file_signature(test_paths),
    }

    def build() -> dict:
        record = {"class_names": list(classes)}
        for split, paths, labels in (("train", train_paths, train_labels), ("test", test_paths, test_labels)):
            record[f"{split}_images"] = images.decode_many(paths, resolution, channels)
            record[f"{split}_labels"] = torch.tensor(labels, dtype=torch.long)
        mean, std = channel_stats(record["train_images"])
        record["mean"], record["std"] = list(mean), list(std)
        return record

    record = cached(cache_key(name, description), build, cache_dir, cache)
    return _to_dataset(name, record, horizontal_flip)


def _split_files(paths: list[str], labels: list[int], seed: int):
    """A seeded, class-stratified train/test split of one image tree."""
    labels_array = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(paths), dtype=bool)
    for k in np.unique(labels_array):
        members = np.flatnonzero(labels_array == k)
        count = max(1, round(len(members) * FOLDER_TEST_FRACTION)) if len(members) > 1 else 0
        test_mask[members[rng.permutation(len(members))[:count]]] = True

    def pick(mask: np.ndarray) -> tuple[list[str], list[int]]:
        chosen = np.flatnonzero(mask)
        return [paths[i] for i in chosen], [labels[i] for i in chosen]

    train_paths, train_labels = pick(~test_mask)
    test_paths, test_labels = pick(test_mask)
    return train_paths, train_labels, test_paths, test_labels


def _streamed_dataset(
    name, classes, channels, resolution, train_paths, train_labels, test_paths, test_labels, horizontal_flip
) -> Dataset:
    train_files = images.ImageFiles(train_paths, resolution, channels)
    # Statistics from a seeded sample: decoding a large set just for them would defeat streaming.
    rng = np.random.default_rng(0)
    sample = rng.choice(len(train_paths), size=min(512, len(train_paths)), replace=False)
    mean, std = channel_stats(images.decode_many([train_paths[i] for i in sample], resolution, channels))
    return Dataset(
        name=name,
        class_names=tuple(classes),
        channels=channels,
        resolution=resolution,
        mean=mean,
        std=std,
        train=ImageSet(train_files, torch.tensor(train_labels, dtype=torch.long)),
        test=ImageSet(
            images.ImageFiles(test_paths, resolution, channels), torch.tensor(test_labels, dtype=torch.long)
        ),
        horizontal_flip=horizontal_flip,
    )


def demo_path() -> Path:
    """Path of the bundled Fashion-MNIST subset."""
    return Path(str(importlib.resources.files("proxylessnas.data") / "bundled" / DEMO_FILE))


def _load_demo(options: dict) -> Dataset:
    path = demo_path()
    if not path.is_file():
        raise ProxylessError("bundled demo dataset missing", str(path), "reinstall proxylessnas")
    with np.load(path, allow_pickle=False) as archive:
        parts = {key: archive[key] for key in archive.files}
    record = _arrays_record(parts, [str(n) for n in parts["class_names"]], options)
    return _to_dataset("demo", record, horizontal_flip=False)


def synthetic_dataset(
    num_train: int = 1000,
    *,
    num_classes: int = 10,
    resolution: int = 16,
    channels: int = 3,
    seed: int = 0,
    limit_per_class: int | None = None,
    stream: bool | None = None,
) -> Dataset:
    """A small learnable problem for tests: one smooth random pattern per class plus noise.

    Each class has a fixed low-frequency template; an image is that template, a random
    brightness shift and pixel noise. A tiny network separates the classes within a few
    hundred steps, but not from a single pixel.
    """
    del stream  # accepted so that spec options apply uniformly
    num_test = max(num_classes, num_train // 4)
    pixels = (num_train + num_test) * channels * resolution * resolution
    if pixels > SYNTHETIC_MAX_PIXELS:  # drawn as float32 noise: 4 bytes each, then kept as uint8
        raise ProxylessError(
            f"synthetic data of {num_train} images at {resolution}x{resolution} would take "
            f"{pixels * 4 / 2**30:.0f} GB to draw", f"synthetic:{num_train}",
            f"give at most {SYNTHETIC_MAX_PIXELS // (channels * resolution * resolution) * 4 // 5} images "
            "at this resolution, or a lower resolution")
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=generator) * 2 - 1
    templates = F.interpolate(coarse, size=(resolution, resolution), mode="bilinear", align_corners=False)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(count) % num_classes
        labels = labels[torch.randperm(count, generator=generator)]
        noise = torch.randn(count, channels, resolution, resolution, generator=generator)
        shift = torch.randn(count, 1, 1, 1, generator=generator)
        pixels = 128 + 60 * templates[labels] + 35 * noise + 20 * shift
        return pixels.round().clamp(0, 255).to(torch.uint8), labels

    train_images, train_labels = draw(num_train)
    test_images, test_labels = draw(num_test)
    parts = {
        "train_images": train_images.numpy(),
        "train_labels": train_labels.numpy(),
        "test_images": test_images.numpy(),
        "test_labels": test_labels.numpy(),
    }
    options = {"limit_per_class": limit_per_class}
    record = _arrays_record(parts, [f"class_{k}" for k in range(num_classes)], options)
    return _to_dataset("synthetic", record, horizontal_flip=True)
