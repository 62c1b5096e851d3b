"""How fast random-path supernet training learns in a short CPU search, per remedy.

Every variant trains a fresh supernet of the demo space (``proxyless-cifar``, width 0.5, depths
2,2,2,2,2,1, 28x28 grey, 10 classes) on the bundled demo data (4,500 training images after the
10% architecture split) with the demo recipe's weight step: one path per layer sampled from
the (uniform) alphas, CE with label smoothing 0.1, SGD Nesterov 0.9, weight decay 4e-5 on
conv/linear weights, gradient clipping at norm 5, batch 64, cosine LR over the run, optionally
after a linear LR warm-up. Same seed, same batches, same path samples for every variant.

Reported per variant: the running train accuracy (and loss) over windows of ``--window`` steps,
and the test accuracy (1,000 images) of ``--archs`` fixed random architectures derived with
inherited weights after BatchNorm recalibration on 20 training batches (the demo's final step;
the alphas are not trained here, so every derived net is a random one and all variants test the
same architectures). ``fixed`` trains one of those architectures alone (the ceiling).

    python benchmarks/supernet_short_training.py --steps 150 --variants baseline,zero_init
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from proxylessnas import Arch, SuperNet, get_space
from proxylessnas.data import BatchIterator, load_dataset, split_validation
from proxylessnas.train.bn_recalibration import recalibrate_bn
from proxylessnas.train.loops import evaluate

# name -> settings; defaults: lr 0.05, no LR warm-up, the paper's independent init, random paths
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "zero_init": {"zero_init_residual": True},
    "lr_warmup": {"warmup_steps": 30},
    "zero_init+lr_warmup": {"zero_init_residual": True, "warmup_steps": 30},
    "lr0.1": {"lr": 0.1},
    "zero_init+lr0.1": {"zero_init_residual": True, "lr": 0.1},
    "no_clip": {"clip": 0.0},
    "zero_init+no_clip": {"zero_init_residual": True, "clip": 0.0},
    "embed": {"embed_smallest": True},
    "embed+zero_init": {"embed_smallest": True, "zero_init_residual": True},
    "embed+zero_init+lr0.1": {"embed_smallest": True, "zero_init_residual": True, "lr": 0.1},
    "embed+zero_init+lr_warmup": {"embed_smallest": True, "zero_init_residual": True, "warmup_steps": 30},
    "fixed": {"fixed": True},
    "fixed+embed+zero_init": {"embed_smallest": True, "zero_init_residual": True, "fixed": True},
}


def demo_space(num_classes: int = 10):
    return get_space("proxyless-cifar", width_mult=0.5, depths=[2, 2, 2, 2, 2, 1],
                     strides=[2, 2, 2, 1, 2, 1], in_chs=1, resolution=28, num_classes=num_classes)


def learning_rate(base: float, step: int, total: int, warmup_steps: int) -> float:
    """Linear from base / warmup_steps to base over ``warmup_steps``, then cosine to 0."""
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def run_variant(name: str, settings: dict, steps: int, window: int, num_archs: int, seed: int) -> dict:
    dataset = load_dataset("demo")
    train_part, _ = split_validation(dataset, 0.1, seed=seed)
    batches = BatchIterator.for_dataset(dataset, train_part, 64, augment=True, seed=seed, drop_last=True)
    space = demo_space(dataset.num_classes)
    torch.manual_seed(seed)
    supernet = SuperNet(space, dataset.num_classes, embed_smallest=settings.get("embed_smallest", False),
                        zero_init_residual=settings.get("zero_init_residual", False))
    arch_draws = torch.Generator().manual_seed(123)
    archs = [supernet.sample_arch(arch_draws) for _ in range(num_archs)]
    params = supernet.weight_parameters()
    optimizer = torch.optim.SGD([{"params": [p for p in params if p.ndim > 1], "weight_decay": 4e-5},
                                 {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
                                lr=0.0, momentum=0.9, nesterov=True)
    base_lr, warmup = settings.get("lr", 0.05), settings.get("warmup_steps", 0)
    clip = settings.get("clip", 5.0)
    sampler = torch.Generator().manual_seed(seed + 2)
    windows, correct, seen, loss_sum = [], 0, 0, 0.0
    epoch, stream = 0, iter(batches.epoch(0))
    started = time.perf_counter()
    supernet.train()
    for step in range(steps):
        try:
            images, labels = next(stream)
        except StopIteration:
            epoch += 1
            stream = iter(batches.epoch(epoch))
            images, labels = next(stream)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(base_lr, step, steps, warmup)
        if settings.get("fixed"):
            supernet.set_path(archs[0])
        else:
            supernet.sample_weight_step(sampler)
        logits = supernet(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
        optimizer.step()
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        loss_sum += loss.item() * len(labels)
        if (step + 1) % window == 0:
            windows.append({"step": step + 1, "train_accuracy": round(correct / seen, 4),
                            "train_loss": round(loss_sum / seen, 4)})
            correct, seen, loss_sum = 0, 0, 0.0
    train_seconds = time.perf_counter() - started
    test_accuracies = []
    for indices in (archs[:1] if settings.get("fixed") else archs):
        arch = Arch.from_ops(space, [layer.candidates[i] for layer, i in zip(space.searched_layers, indices)])
        net = supernet.derive(arch, inherit=True)
        recalibration = BatchIterator.for_dataset(dataset, train_part, 64, augment=False, seed=seed)
        recalibrate_bn(net, recalibration.epoch(0), 20)
        test = BatchIterator.for_dataset(dataset, dataset.test, 500, augment=False, shuffle=False)
        test_accuracies.append(evaluate(net, test, dataset.num_classes).top1 / 100.0)
    return {"variant": name, "settings": settings, "steps": steps, "windows": windows,
            "test_accuracies": test_accuracies, "median_test_accuracy": statistics.median(test_accuracies),
            "train_seconds": round(train_seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="baseline,embed+zero_init",
                        help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--archs", type=int, default=3, help="random architectures derived for the test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.variants.split(","):
        result = run_variant(name, VARIANTS[name], args.steps, args.window, args.archs, args.seed)
        result["seed"] = args.seed
        trajectory = " ".join(f"{w['step']}:{w['train_accuracy']:.2f}" for w in result["windows"])
        print(f"{name:28s} seed {args.seed} train acc {trajectory} | last loss "
              f"{result['windows'][-1]['train_loss']:.3f} | test {result['test_accuracies']} "
              f"({result['train_seconds']} s)", flush=True)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as handle:
                handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
