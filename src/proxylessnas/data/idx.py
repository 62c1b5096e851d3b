"""MNIST-style idx files (plain or gzipped), as used by MNIST and Fashion-MNIST."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from proxylessnas.errors import ProxylessError

# idx type byte -> numpy dtype (big-endian where it matters)
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

STEMS = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic number."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ProxylessError(
                f"corrupt or truncated gzip file ({error})",
                str(path),
                "download the file again",
            ) from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Decode one idx file into an array of its declared shape and type."""
    path = Path(path)
    data = read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ProxylessError(
            "not an idx file (bad magic number)", str(path), "point to MNIST-style idx files"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ProxylessError("truncated idx header", str(path), "download the file again")
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ProxylessError(
            f"idx file has {len(data)} bytes, its header {shape} needs {expected}",
            str(path),
            "the file is truncated or corrupt; download it again",
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four idx files in ``folder`` (plain or .gz), or None if any is missing."""
    found = {}
    for part, stems in STEMS.items():
        candidates = [folder / (stem + ext) for stem in stems for ext in ("", ".gz")]
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            return None
        found[part] = match
    return found


def load_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """Train/test images (N, 1, H, W) uint8 and labels (N,) from an idx folder."""
    files = find_idx_files(folder)
    if files is None:
        names = ", ".join(stems[0] + "[.gz]" for stems in STEMS.values())
        raise ProxylessError(
            "no MNIST-style idx files found", str(folder), f"the folder must contain {names}"
        )
    out = {}
    for part, path in files.items():
        array = read_idx(path)
        expected_ndim = 3 if part.endswith("images") else 1
        if array.ndim != expected_ndim or array.dtype != np.uint8:
            raise ProxylessError(
                f"expected a {expected_ndim}-D uint8 idx array, got {array.ndim}-D {array.dtype}",
                str(path),
                "check that images and labels files are not swapped",
            )
        out[part] = array[:, None] if expected_ndim == 3 else array
    for split in ("train", "test"):
        if len(out[f"{split}_images"]) != len(out[f"{split}_labels"]):
            raise ProxylessError(
                f"{len(out[f'{split}_images'])} {split} images but {len(out[f'{split}_labels'])} labels",
                str(files[f"{split}_labels"]),
                "the images and labels files come from different releases",
            )
    return out


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 array as an idx file (gzipped if ``compress`` or the name ends in .gz)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6)
    path.write_bytes(data)
