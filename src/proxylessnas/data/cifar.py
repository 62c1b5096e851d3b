"""CIFAR-10 layouts: the python-pickle batches, the binary batches, and a JPEG/PNG tree."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from proxylessnas.errors import ProxylessError

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
RECORD_BYTES = 1 + 3 * 32 * 32


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle plain containers and numpy arrays only: a batch file cannot run code.

    The rejected alternative, ``pickle.load``, executes whatever a crafted file asks for.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            obj = _NumpyOnlyUnpickler(io.BufferedReader(handle), encoding="bytes").load()
    except Exception as error:  # noqa: BLE001 - any failure means "not a CIFAR batch"
        raise ProxylessError(
            f"cannot read CIFAR pickle batch ({type(error).__name__}: {error})",
            str(path),
            "download cifar-10-python.tar.gz again and extract it",
        ) from None
    if not isinstance(obj, dict):
        raise ProxylessError("CIFAR pickle batch is not a dict", str(path), "check the file")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _pickle_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise ProxylessError(
            "CIFAR pickle batch lacks 'data' or 'labels' (is it CIFAR-100?)",
            str(path),
            "use the CIFAR-10 python version",
        )
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ProxylessError(
            f"CIFAR batch has data {data.shape} and {len(labels)} labels, expected (N, 3072)",
            str(path),
            "the file is truncated or not CIFAR-10",
        )
    return data.reshape(-1, 3, 32, 32), labels


def _binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ProxylessError(
            f"CIFAR binary batch has {raw.size} bytes, not a multiple of {RECORD_BYTES}",
            str(path),
            "the file is truncated; download cifar-10-binary.tar.gz again",
        )
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ProxylessError(
            f"label {labels.max()} out of range 0..9", str(path), "use the CIFAR-10 binary version"
        )
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _read_names(path: Path, binary: bool) -> tuple[str, ...]:
    if not path.is_file():
        return CLASS_NAMES
    if binary:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        meta = _unpickle(path).get("label_names", [])
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta]
    return tuple(names) if len(names) == 10 else CLASS_NAMES


def detect_layout(folder: Path) -> tuple[str, Path] | None:
    """('pickle' | 'binary' | 'tree', root) for a CIFAR-10 folder, or None if unrecognised."""
    for root in (folder, folder / "cifar-10-batches-py"):
        if (root / "data_batch_1").is_file() and (root / "test_batch").is_file():
            return "pickle", root
    for root in (folder, folder / "cifar-10-batches-bin"):
        if (root / "data_batch_1.bin").is_file() and (root / "test_batch.bin").is_file():
            return "binary", root
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return "tree", folder
    return None


def source_files(layout: str, root: Path) -> list[Path]:
    """The batch files a pickle/binary layout is read from (for the cache key)."""
    suffix = ".bin" if layout == "binary" else ""
    return [root / (name + suffix) for name in (*TRAIN_BATCHES, "test_batch")]


def load_batches(layout: str, root: Path) -> dict:
    """Decode the pickle or binary layout: uint8 (N, 3, 32, 32) images, int64 labels, names."""
    read = _binary_batch if layout == "binary" else _pickle_batch
    suffix = ".bin" if layout == "binary" else ""
    parts = {}
    for split, names in (("train", TRAIN_BATCHES), ("test", ("test_batch",))):
        images, labels = [], []
        for name in names:
            path = root / (name + suffix)
            if not path.is_file():
                raise ProxylessError("CIFAR-10 batch file missing", str(path), "extract the complete archive")
            batch_images, batch_labels = read(path)
            images.append(batch_images)
            labels.append(batch_labels)
        parts[f"{split}_images"] = np.concatenate(images)
        parts[f"{split}_labels"] = np.concatenate(labels)
    meta = root / ("batches.meta.txt" if layout == "binary" else "batches.meta")
    parts["class_names"] = _read_names(meta, binary=layout == "binary")
    return parts


def write_pickle_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """Write a CIFAR-style pickle batch (used by tests and tooling)."""
    data = {b"data": np.asarray(images, np.uint8).reshape(len(images), -1), b"labels": labels}
    with Path(path).open("wb") as handle:
        pickle.dump(data, handle, protocol=2)


def write_binary_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """Write a CIFAR-style binary batch (used by tests and tooling)."""
    flat = np.asarray(images, np.uint8).reshape(len(images), -1)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], flat], axis=1)
    records.tofile(path)
