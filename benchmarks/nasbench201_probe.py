"""How fast a NAS-Bench-201 supernet learns: one fixed cell against uniformly sampled paths.

Trains the ``nasbench201`` supernet at 16x16 (``--resolution``) on half the CIFAR-10 training
split (batch 64, SGD Nesterov 0.9, weight decay 5e-4 on conv/linear weights, cosine from
``--lr``) and prints the training loss and accuracy of the path in use per epoch. ``--path``
fixes one cell (a benchmark string); otherwise a uniform path is drawn every ``--hold`` steps.
``--save 12,24`` writes checkpoints that ``benchmarks/nasbench201.py ranking --source <name>-e12.pt`` ranks.
Results: benchmarks/results/nasbench201/supernet_probe.json.

    python benchmarks/nasbench201_probe.py uniform --epochs 24 --save 12,24
    python benchmarks/nasbench201_probe.py best --epochs 2 --path "$BEST"   # a benchmark string
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from nasbench201 import CIFAR, RUNS


def initialise_cell_convs(supernet, how: str) -> None:
    """``random``: undo the supernet's identity start of the edge convs (PyTorch's default init);
    ``embed``: each 3x3 conv starts as its edge's 1x1 conv (centre tap)."""
    if how == "identity":
        return
    from proxylessnas.ops.cell_blocks import ReLUConvBN
    with torch.no_grad():
        for ops in supernet.decision_ops:
            for mixed in ops:
                convs = [m.conv for m in mixed.candidates.values() if isinstance(m, ReLUConvBN)]
                for conv in convs:
                    conv.reset_parameters()
                if how == "embed":
                    small = min(convs, key=lambda c: c.kernel_size[0])
                    for conv in convs:
                        if conv is not small:
                            k = conv.kernel_size[0] // 2
                            conv.weight.zero_()
                            conv.weight[:, :, k, k] = small.weight[:, :, 0, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="label of the printed lines and saved checkpoints")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--steps", type=int, default=195, help="weight steps an epoch")
    parser.add_argument("--hold", type=int, default=1, help="steps a sampled path is kept")
    parser.add_argument("--path", help="a fixed benchmark cell instead of sampled paths")
    parser.add_argument("--lr", type=float, default=0.025)
    parser.add_argument("--resolution", type=int, default=16, help="image side (32: the benchmark's own)")
    parser.add_argument("--init", choices=("identity", "random", "embed"), default="identity",
                        help="edge convs: the supernet's identity start, PyTorch's default init, "
                             "or each 3x3 conv started as its edge's 1x1 conv")
    parser.add_argument("--save", default="", help="epochs after which to save a checkpoint, e.g. 12,24")
    args = parser.parse_args()

    from proxylessnas import get_space
    from proxylessnas.data import BatchIterator, load_dataset, split_validation
    from proxylessnas.space.nasbench201 import arch_from_string
    from proxylessnas.supernet import build_supernet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = f"cifar10:{CIFAR}" + (f"?resolution={args.resolution}" if args.resolution != 32 else "")
    dataset = load_dataset(spec)
    train_part, _ = split_validation(dataset, 0.5, seed=0)
    space = get_space("nasbench201", resolution=args.resolution)
    supernet = build_supernet(space, dataset.num_classes)
    initialise_cell_convs(supernet, args.init)
    fixed = arch_from_string(args.path, space).indices(space) if args.path else None
    params = supernet.weight_parameters()
    optimizer = torch.optim.SGD([{"params": [p for p in params if p.ndim > 1], "weight_decay": 5e-4},
                                 {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
                                lr=args.lr, momentum=0.9, nesterov=True)
    sampler = torch.Generator().manual_seed(2)
    batches = BatchIterator.for_dataset(dataset, train_part, 64, augment=True, seed=0)
    saves = {int(e) for e in args.save.split(",") if e}
    total, started, path = args.epochs * args.steps, time.perf_counter(), fixed
    for epoch in range(args.epochs):
        stream, correct, seen, loss_sum = batches.epoch(epoch), 0, 0, 0.0
        for step in range(args.steps):
            k = epoch * args.steps + step
            for group in optimizer.param_groups:
                group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * k / total))
            images, labels = next(stream)
            if fixed is None and k % args.hold == 0:
                path = supernet.sample_weight_step(sampler)
            supernet.set_path(path)
            logits = supernet(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            loss_sum += loss.item()
        print(f"{args.name} epoch {epoch + 1} loss {loss_sum / args.steps:.3f} acc {correct / seen:.3f} "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        if epoch + 1 in saves:
            RUNS.mkdir(parents=True, exist_ok=True)
            torch.save({"config": {"data": {"dataset": spec}, "run": {"seed": 0}},
                        "supernet": supernet.state_dict(), "epoch": epoch + 1,
                        "edge_conv_init": args.init},
                       RUNS / f"{args.name}-e{epoch + 1}.pt")


if __name__ == "__main__":
    main()
