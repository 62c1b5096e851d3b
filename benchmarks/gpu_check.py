"""The ImageNet GPU recipe's steps on a CUDA device: timed search steps, AMP and channels_last.

For the paper space at 224x224 (``proxyless-imagenet``, 1000 classes), per precision variant
(``fp32``; ``amp``: bfloat16 autocast, float16 where bf16 is missing; ``amp+channels_last``):

- ``weight``: one supernet weight step (sample one path, forward/backward, SGD Nesterov);
- ``arch``: one architecture step in ``full_v2`` mode (backward to the alphas only, Adam);
- ``child``: the training step of the standalone ``proxyless_gpu`` zoo net (the lower bound);

median step time over ``--steps`` synchronised steps after ``--warmup``, images per second and
peak allocated memory. Then the zoo nets' inference latency at batch 8 with CUDA events (the
paper's GPU latency setting), so their ordering can be compared with the paper's table.

    python benchmarks/gpu_check.py [--batch-size 64] [--steps 20] [--out benchmarks/results/gpu_check.json]
    python benchmarks/gpu_check.py --device cpu --batch-size 2 --steps 2 --resolution 64   # smoke test

About 3 minutes on one H200 with the defaults. Exits with code 2 and one line when CUDA is not
available (unless ``--device cpu``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from proxylessnas import get_space
from proxylessnas.hardware.measure import Backend, measure_interleaved, prepare_runner
from proxylessnas.nets import zoo
from proxylessnas.supernet import SuperNet
from proxylessnas.train.loops import autocast_context

VARIANTS = {"fp32": (False, False), "amp": (True, False), "amp+channels_last": (True, True)}
ZOO_NETS = ("proxyless_gpu", "proxyless_cpu", "proxyless_mobile", "mobilenet_v2")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step: Callable[[], None], device: torch.device, warmup: int, steps: int) -> dict:
    """Median seconds of ``step`` and peak allocated memory (MB, CUDA only) over ``steps`` calls."""
    for _ in range(warmup):
        step()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"median_s": statistics.median(times), "peak_mb": peak}


def training_steps(device: torch.device, batch: int, resolution: int, amp: bool, channels_last: bool
                   ) -> dict[str, Callable[[], None]]:
    """The three steps of one variant, on fresh models (same seed)."""
    torch.manual_seed(0)
    space = get_space("proxyless-imagenet", resolution=resolution, num_classes=1000)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images = torch.randn(batch, 3, resolution, resolution, device=device)
    images = images.contiguous(memory_format=memory_format)
    labels = torch.randint(0, 1000, (batch,), device=device)
    generator = torch.Generator().manual_seed(1)
    supernet = SuperNet(space).to(device, memory_format=memory_format)
    child = zoo.create("proxyless_gpu", resolution=resolution).to(device, memory_format=memory_format)

    def sgd(params):
        return torch.optim.SGD(params, lr=0.025, momentum=0.9, nesterov=True, weight_decay=4e-5)

    weight_optimizer, child_optimizer = sgd(supernet.weight_parameters()), sgd(child.parameters())
    arch_optimizer = torch.optim.Adam(supernet.arch_parameters(), lr=1e-3, betas=(0.0, 0.999))
    alphas = supernet.arch_parameters()

    def loss(model: nn.Module) -> torch.Tensor:
        with autocast_context(device, amp):
            return nn.functional.cross_entropy(model(images), labels)

    def weight_step() -> None:
        supernet.sample_weight_step(generator)
        weight_optimizer.zero_grad(set_to_none=True)
        loss(supernet).backward()
        weight_optimizer.step()

    def arch_step() -> None:
        supernet.sample_arch_step("full_v2", generator)
        arch_optimizer.zero_grad(set_to_none=True)
        loss(supernet).backward(inputs=alphas)
        arch_optimizer.step()
        supernet.finish_arch_step()

    def child_step() -> None:
        child_optimizer.zero_grad(set_to_none=True)
        loss(child).backward()
        child_optimizer.step()

    return {"weight": weight_step, "arch": arch_step, "child": child_step}


def zoo_latency(device: torch.device, resolution: int, batch: int) -> dict[str, float]:
    """Median inference latency (ms) of the zoo nets, timed interleaved in one session."""
    backend = Backend("torch", device.type, batch, 1)
    shape = (batch, 3, resolution, resolution)
    runners = [prepare_runner(zoo.create(name, resolution=resolution), shape, backend, seed=i)
               for i, name in enumerate(ZOO_NETS)]
    stats = measure_interleaved(runners, warmup=20, rounds=10, per_round=10, threads=1)
    return {name: s.median for name, s in zip(ZOO_NETS, stats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--latency-batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_check.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: CUDA is not available (gpu_check): run it on a machine with a GPU, "
              "or smoke-test it with --device cpu", file=sys.stderr)
        raise SystemExit(2)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for variant, (amp, channels_last) in VARIANTS.items():
        if device.type != "cuda" and variant != "fp32":
            continue  # autocast and channels_last are CUDA-only in the product
        steps = training_steps(device, args.batch_size, args.resolution, amp, channels_last)
        for name, step in steps.items():
            result = timed_steps(step, device, args.warmup, args.steps)
            row = {"variant": variant, "step": name, **result,
                   "images_per_s": args.batch_size / result["median_s"]}
            rows.append(row)
            peak = f"{row['peak_mb']:.0f} MB" if row["peak_mb"] is not None else "-"
            print(f"{variant:18s} {name:6s} {row['median_s'] * 1e3:8.1f} ms  "
                  f"{row['images_per_s']:8.0f} img/s  peak {peak}", flush=True)
        del steps
        if device.type == "cuda":
            torch.cuda.empty_cache()
    latency = zoo_latency(device, args.resolution, args.latency_batch)
    for name, ms in latency.items():
        print(f"latency {name:18s} {ms:7.2f} ms (batch {args.latency_batch})")
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
            "torch": torch.__version__, "batch_size": args.batch_size, "resolution": args.resolution,
            "steps": args.steps, "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**info, "rows": rows, "zoo_latency_ms": latency,
                                    "latency_batch": args.latency_batch}, indent=1) + "\n")


if __name__ == "__main__":
    main()
