"""Image files: scanning a class-per-folder tree, decoding with PIL, streaming from disk."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from proxylessnas.errors import ProxylessError

EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"})
_PARALLEL_MIN = 2000  # below this, starting worker processes costs more than it saves


def list_classes(folder: Path) -> list[str]:
    """Sorted names of the sub-folders of ``folder`` (one per class)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def list_images(folder: Path, limit: int | None = None) -> list[str]:
    """Sorted image file paths directly inside ``folder`` (the first ``limit`` if given)."""
    names = sorted(
        e.name
        for e in os.scandir(folder)
        if e.is_file() and os.path.splitext(e.name)[1].lower() in EXTENSIONS
    )
    return [os.path.join(folder, n) for n in names[:limit]]


def scan_tree(
    folder: Path, class_names: list[str] | None = None, limit_per_class: int | None = None
) -> tuple[list[str], list[int], list[str]]:
    """(paths, labels, class_names) for ``folder/<class>/<image>``.

    ``class_names`` fixes the label order (so a test tree uses the train tree's labels).
    """
    found = list_classes(folder)
    if class_names is None:
        class_names = found
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise ProxylessError(
            f"class folders {unknown} are not in the training classes",
            str(folder),
            "use the same class folders under train/ and test/",
        )
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        if name not in found:
            continue
        files = list_images(folder / name, limit_per_class)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise ProxylessError(
            "no images found",
            str(folder),
            f"put images ({', '.join(sorted(EXTENSIONS))}) in one sub-folder per class",
        )
    return paths, labels, class_names


def file_signature(paths: list[str]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) per file: enough to notice edits for the cache key."""
    out = []
    for path in paths:
        info = os.stat(path)
        out.append((path, info.st_size, info.st_mtime_ns))
    return out


def image_channels(path: str) -> int:
    """1 for grey-scale images, 3 for anything else (converted to RGB)."""
    with Image.open(path) as image:
        return 1 if image.mode in ("1", "L", "I", "I;16", "F") else 3


def decode_image(path: str, resolution: int, channels: int) -> np.ndarray:
    """One image as uint8 (C, resolution, resolution): shorter side resized, centre-cropped."""
    try:
        with Image.open(path) as image:
            mode = "L" if channels == 1 else "RGB"
            if image.size != (resolution, resolution):
                image.draft(mode, (resolution, resolution))  # JPEG: decode at reduced size
            image = image.convert(mode)
            width, height = image.size
            if (width, height) != (resolution, resolution):
                scale = resolution / min(width, height)
                size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
                image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
                left = (size[0] - resolution) // 2
                top = (size[1] - resolution) // 2
                image = image.crop((left, top, left + resolution, top + resolution))
            array = np.array(image, dtype=np.uint8)  # a writable copy
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ProxylessError(
            f"cannot decode image ({error})", path, "remove or replace the broken file"
        ) from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _decode_chunk(args: tuple[list[str], int, int]) -> np.ndarray:
    paths, resolution, channels = args
    out = np.empty((len(paths), channels, resolution, resolution), np.uint8)
    for i, path in enumerate(paths):
        out[i] = decode_image(path, resolution, channels)
    return out


def decode_many(paths: list[str], resolution: int, channels: int, workers: int | None = None) -> torch.Tensor:
    """Decode ``paths`` into one uint8 tensor (N, C, H, W), in parallel processes if many."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(paths) < _PARALLEL_MIN:
        return torch.from_numpy(_decode_chunk((paths, resolution, channels)))
    chunk = 1000
    jobs = [(paths[i : i + chunk], resolution, channels) for i in range(0, len(paths), chunk)]
    out = np.empty((len(paths), channels, resolution, resolution), np.uint8)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, block in enumerate(pool.map(_decode_chunk, jobs)):
            out[i * chunk : i * chunk + len(block)] = block
    return torch.from_numpy(out)


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded one by one (in DataLoader workers) for sets too big for memory.

    Indexing with an int gives a uint8 (C, H, W) tensor; ``subset`` selects files.
    """

    def __init__(self, paths: list[str] | tuple[str, ...], resolution: int, channels: int) -> None:
        self.paths = tuple(paths)
        self.resolution = resolution
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(decode_image(self.paths[index], self.resolution, self.channels))

    def subset(self, indices: torch.Tensor) -> ImageFiles:
        return ImageFiles([self.paths[i] for i in indices.tolist()], self.resolution, self.channels)

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files, {self.channels}x{self.resolution}^2)"
