"""Regenerate the bundled demo set: a class-balanced Fashion-MNIST subset.

    python benchmarks/make_demo_subset.py [--source /usr/share/datasets/fashion-mnist]

Picks ``--train-per-class`` training and ``--test-per-class`` test images of every class
with a fixed seed and writes src/proxylessnas/data/bundled/fashion_mnist_demo.npz
(uint8, compressed). Same source files + same seed = byte-identical arrays.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from proxylessnas.data.idx import load_idx_folder
from proxylessnas.data.sources import DEMO_FILE, FASHION_CLASSES, FASHION_MNIST_DIR

OUT = Path(__file__).resolve().parents[1] / "src" / "proxylessnas" / "data" / "bundled" / DEMO_FILE


def balanced(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` random images of every class."""
    picks = [rng.choice(np.flatnonzero(labels == k), per_class, replace=False) for k in range(10)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=FASHION_MNIST_DIR)
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    parts = load_idx_folder(Path(args.source))
    rng = np.random.default_rng(args.seed)
    train = balanced(parts["train_labels"], args.train_per_class, rng)
    test = balanced(parts["test_labels"], args.test_per_class, rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        train_images=parts["train_images"][train],
        train_labels=parts["train_labels"][train].astype(np.uint8),
        test_images=parts["test_images"][test],
        test_labels=parts["test_labels"][test].astype(np.uint8),
        class_names=np.array(FASHION_CLASSES),
    )
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({len(train)} train, {len(test)} test, {size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
