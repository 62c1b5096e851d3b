"""Training throughput of the paper's CIFAR-10 model (``proxyless_cifar``) and the time its recipe
would take, for one short run on a GPU.

Per variant (``fp32``, ``amp``: bfloat16 autocast, float16 where bf16 is missing;
``amp+channels_last``) and drop-path rate (0 and ``--drop-path``, the rate the preset leaves to
the user): the median time of one training step of the ``pyramid-tree-cifar`` recipe (SGD
Nesterov 0.9, weight decay 1e-4, batch ``--batch-size``, cross-entropy) on random 32x32 images
over ``--steps`` synchronised steps after ``--warmup``, images per second and peak allocated
memory; then the estimated time of the recipe's 600 epochs of 50,000 images at that throughput
(data loading, cutout and evaluation not counted: a lower bound).

    python benchmarks/gpu_cifar_throughput.py [--batch-size 128] [--steps 30] [--out FILE]
    python benchmarks/gpu_cifar_throughput.py --device cpu --batch-size 4 --steps 2   # smoke test

About 2 minutes on one H200 (the CPU smoke test takes minutes: 54 tree blocks of small ops).
Exits with code 2 and one line when CUDA is not available (unless ``--device cpu``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from gpu_check import VARIANTS, timed_steps

from proxylessnas.nets import zoo
from proxylessnas.train.loops import autocast_context, drop_path_modules
from proxylessnas.train.recipe import pyramid_tree_cifar_recipe

EPOCHS_IMAGES = 50_000


def training_step(device: torch.device, batch: int, amp: bool, channels_last: bool, drop_path: float):
    """One training step of ``proxyless_cifar`` with the preset's optimiser, on fresh weights."""
    torch.manual_seed(0)
    recipe = pyramid_tree_cifar_recipe()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = zoo.create("proxyless_cifar").to(device, memory_format=memory_format).train()
    for module in drop_path_modules(model):
        module.drop_path_rate = drop_path
    images = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                                weight_decay=recipe.weight_decay)

    def step() -> None:
        with autocast_context(device, amp):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, recipe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--drop-path", type=float, default=0.1, help="the second drop-path rate timed")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "gpu_cifar_throughput.json")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: CUDA is not available (gpu_cifar_throughput): run it on a GPU machine, or pass "
              "--device cpu for a smoke test", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    rows = []
    for name, (amp, channels_last) in VARIANTS.items():
        for rate in (0.0, args.drop_path):
            step, recipe = training_step(device, args.batch_size, amp, channels_last, rate)
            timing = timed_steps(step, device, args.warmup, args.steps)
            images_per_s = args.batch_size / timing["median_s"]
            hours = recipe.epochs * EPOCHS_IMAGES / images_per_s / 3600
            rows.append({"variant": name, "drop_path": rate, **timing, "images_per_s": images_per_s,
                         "recipe_epochs": recipe.epochs, "recipe_hours_lower_bound": hours})
            print(f"{name:18s} drop-path {rate:.2f}: {timing['median_s'] * 1e3:7.1f} ms/step, "
                  f"{images_per_s:8.0f} images/s, recipe ({recipe.epochs} epochs) >= {hours:5.1f} h",
                  flush=True)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
              "torch": torch.__version__, "batch_size": args.batch_size, "steps": args.steps, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
