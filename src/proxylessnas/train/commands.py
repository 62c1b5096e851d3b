"""``proxyless train`` and ``proxyless eval``: thin wrappers over :mod:`proxylessnas.train`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from proxylessnas.arguments import (
    existing_file,
    existing_folder,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
    rate,
    seed,
)
from proxylessnas.errors import ProxylessError
from proxylessnas.progress import add_option as add_progress_option
from proxylessnas.progress import progress_bar
from proxylessnas.runtime.devices import resolve_device
from proxylessnas.runtime.distributed import add_launch_arguments, launched_rank, relaunch_if_requested

TRAIN_EXAMPLE = """examples:
  proxyless train mobilenet_v2 --dataset cifar10:../shared/data/cifar10 --epochs 30 --out runs/mbv2
  proxyless train runs/search/arch.json ema_decay=0.999 --dataset cifar10:DIR --init-from runs/search
  proxyless train --resume --out runs/mbv2            # the run's own net, dataset and recipe
  proxyless train --resume --out runs/mbv2 lr=0.025   # after a NaN: go on with a lower lr
  proxyless train runs/search/arch.json --dataset cifar10:DIR --nproc 4 lr=0.2   # 4 GPUs, 4x the batch
  proxyless train proxyless_cifar --dataset cifar10:DIR drop_path=0.1   # recipe pyramid-tree-cifar
  proxyless train mobilenet_v2 --dataset cifar10:DIR --recipe cifar cutout=16 epochs=300
  proxyless train --dataset cifar10:DIR --epochs 200 \
    '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|'
key=value recipe overrides may stand anywhere on the line, on top of the --recipe preset
(default: nasbench201 for a NAS-Bench-201 cell, pyramid-tree-cifar for a pyramid-tree net,
otherwise demo, cifar or imagenet by the dataset). Zoo names train their CIFAR-size
variant (stride-1 stem, proxyless-cifar space) on datasets of 64 pixels or less. SIGINT/SIGTERM
save the position (exit 130/143); --resume continues it exactly and may change the learning
rate and other settings that keep the run's shape (recorded in run.json's config_history)."""

EVAL_EXAMPLE = """example:
  proxyless eval runs/mbv2/best.pt --dataset cifar10:../shared/data/cifar10"""


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train an arch or zoo net on a dataset",
        description="Train ARCH_JSON or a zoo net with the dataset's recipe (SGD Nesterov, cosine "
                    "with warm-up, label smoothing, optional EMA). key=value overrides any recipe field.",
        epilog=TRAIN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("target", nargs="?", metavar="ARCH_JSON|NB201_STRING|ZOO_NAME",
                       help="arch JSON file, NAS-Bench-201 string ('|nor_conv_3x3~0|+|...|') or zoo name "
                            "(with --resume: the run's own net when left out)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. lr=0.05")
    train.add_argument("--dataset", metavar="SPEC",
                       help="dataset spec (default: demo; with --resume the run's own)")
    train.add_argument("--recipe", metavar="NAME",
                       help="recipe preset: cifar, imagenet, nasbench201, demo, pyramid-tree-cifar (default: "
                            "by net and dataset; key=value overrides apply on top)")
    train.add_argument("--epochs", type=positive_int)
    train.add_argument("--batch-size", type=positive_int)
    train.add_argument("--lr", type=positive_float)
    train.add_argument("--ema-decay", type=rate, help="EMA of the weights, e.g. 0.9998 (0: off)")
    train.add_argument("--seed", type=seed)
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--out", type=output_folder, help="run folder (default: runs/train-<target>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly (its net, dataset and recipe; key=value "
                            "may change the learning rate and other settings that keep the run's shape)")
    train.add_argument("--init-from", metavar="RUN_DIR", type=existing_folder,
                       help="start from the weights a search run inherited (with BN recalibration)")
    train.add_argument("--bn-batches", type=non_negative_int, default=50,
                       help="batches for BN recalibration with --init-from (default 50)")
    train.add_argument("--max-steps", type=positive_int, help="stop after N optimiser steps (resume later)")
    train.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    train.add_argument("--threads", type=positive_int, metavar="N",
                       help="torch CPU threads for this process (default: torch's own choice)")
    add_progress_option(train)
    add_launch_arguments(train)
    train.add_argument("--sync-bn", action="store_true",
                       help="with several processes: SyncBatchNorm over all of them (GPUs only)")
    train.add_argument("--distributed-timeout", type=positive_float, default=1800.0, metavar="SECONDS",
                       help="with several processes: how long a collective waits for a lost rank")
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "eval", help="evaluate a checkpoint: top-1, top-5, loss, per class, confusion plot",
        description="Evaluate a training checkpoint (.pt) or exported weights (.safetensors) on "
                    "the test part of a dataset; writes eval.json and confusion.png.",
        epilog=EVAL_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT", type=existing_file)
    evaluate.add_argument("--dataset", default="demo", metavar="SPEC", help="dataset spec (default: demo)")
    evaluate.add_argument("--batch-size", type=positive_int, default=500)
    evaluate.add_argument("--out", type=output_folder,
                          help="folder for eval.json and confusion.png (default: beside CHECKPOINT)")
    evaluate.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    add_progress_option(evaluate)
    evaluate.set_defaults(func=run_eval)


def run_train(args) -> int:
    from proxylessnas.data import load_dataset
    from proxylessnas.nets import net_from_config
    from proxylessnas.runtime.seeding import seed_everything
    from proxylessnas.runtime.stopping import RunInterrupted
    from proxylessnas.train.bn_recalibration import recalibrate_bn
    from proxylessnas.train.recipe import TrainRecipe, default_recipe, named_recipe
    from proxylessnas.train.run import read_saved_run, train_batches, train_model
    from proxylessnas.train.target import build_target, load_search_init, recipe_name_for, target_name

    target, overrides = target_and_overrides(args)
    if args.recipe is not None:
        if args.resume:
            raise ProxylessError("--recipe with --resume", "proxyless train",
                                 "a resumed run keeps its recipe; change its fields with key=value")
        named_recipe(args.recipe)  # an unknown name: one line before any work
    if target is None and not args.resume:
        raise ProxylessError("no net to train", "proxyless train",
                             "give an arch JSON, a NAS-Bench-201 string or a zoo name")
    if target is None and args.out is None:
        raise ProxylessError("--resume without a net needs --out", "proxyless train",
                             "give the --out folder of the run to resume")
    out = Path(args.out or f"runs/train-{target_name(target)}")
    saved = read_saved_run(out) if args.resume else None  # nothing to resume: one line, before any work
    launched = relaunch_if_requested(args)
    if launched is not None:
        return launched
    report = launched_rank() == 0  # under torchrun only rank 0 prints
    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dataset_spec = args.dataset or (saved["run"].get("dataset_spec") if saved else None) or "demo"
    dataset = load_dataset(dataset_spec)
    if saved is not None:  # the run's own recipe; train_model refuses changes of its shape
        recipe = TrainRecipe.from_dict(saved["run"].get("recipe", {}), str(out / "last.pt"))
    else:
        name = args.recipe or (recipe_name_for(target) if target is not None else None)
        recipe = named_recipe(name) if name else default_recipe(dataset.resolution, dataset.name)
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "ema_decay": args.ema_decay, "seed": args.seed}
    recipe = recipe.with_overrides({k: v for k, v in flags.items() if v is not None})
    recipe = recipe.with_overrides(overrides)
    if args.compile:
        recipe = recipe.with_overrides({"compile": True})
    if recipe.warmup_epochs > recipe.epochs:
        recipe = recipe.with_overrides({"warmup_epochs": float(recipe.epochs) * 0.1})
    seed_everything(recipe.seed)
    shape = (dataset.num_classes, dataset.resolution, dataset.channels)
    run_info = {"dataset_spec": dataset_spec, "target": target,
                "normalisation": {"mean": list(dataset.mean), "std": list(dataset.std)}}
    if saved is not None and target is None and not args.init_from:
        model = net_from_config(saved["net_config"], str(out / "last.pt"))
        run_info = dict(saved["run"])
    elif args.init_from:
        model, arch = load_search_init(args.init_from, *shape, dropout=recipe.dropout)
        used = 0
        if not args.resume:  # a resumed run loads its own weights
            used = recalibrate_bn(model.to(device), train_batches(dataset, recipe, device).epoch(0),
                                  args.bn_batches)
        run_info.update(init_from=str(args.init_from), bn_recalibration_batches=used, arch=arch.to_dict())
    else:
        model, description = build_target(target, *shape, dropout=recipe.dropout)
        run_info.update(description)
    if report:
        print(f"{dataset.summary()}\nnet {model.net_config.name or run_info.get('target')}: "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.3f} M params; device {device}; out {out}")
    try:
        record = train_model(model, dataset, recipe, out, resume=args.resume, saved=saved, device=device,
                             progress=not args.no_progress, max_steps=args.max_steps, run_info=run_info,
                             sync_batchnorm=args.sync_bn, distributed_timeout=args.distributed_timeout)
    except RunInterrupted as stop:
        return stop.report("train", out, show=report)
    if record and report:
        print(json.dumps(record))
    return 0


def target_and_overrides(args) -> tuple[str | None, list[str]]:
    """TARGET (None when left out) and the key=value overrides: argparse gives the first override
    to TARGET when TARGET is left out (``proxyless train --resume --out DIR lr=0.025``)."""
    overrides = list(args.overrides or [])
    target = args.target
    if target is not None and "=" in target and not Path(target).exists():
        return None, [target, *overrides]
    return target, overrides


def load_trained_model(path: str | Path):
    """The net (chain or graph) with the deployed weights of a training checkpoint (.pt) or an
    exported safetensors file (net config in its metadata)."""
    from proxylessnas.nets import net_from_config
    from proxylessnas.runtime.checkpoint import load_checkpoint

    path = Path(path)
    if path.suffix == ".safetensors":
        from proxylessnas.nets.weights import load_exported_weights

        return load_exported_weights(path)
    state = load_checkpoint(path)
    if "net_config" not in state or "weights" not in state:
        raise ProxylessError("checkpoint has no net_config/weights", str(path),
                             "give last.pt or best.pt of a 'proxyless train' run")
    model = net_from_config(state["net_config"], str(path))
    try:
        model.load_state_dict(state["weights"])
    except RuntimeError as err:
        raise ProxylessError(f"weights do not fit the net config ({str(err).splitlines()[0]})", str(path),
                             "the checkpoint is damaged; use another") from None
    return model


def run_eval(args) -> int:

    from proxylessnas.data import load_dataset
    from proxylessnas.runtime.atomic import write_json_atomic
    from proxylessnas.train.confusion import plot_confusion
    from proxylessnas.train.loops import evaluate
    from proxylessnas.train.run import test_batches

    device = resolve_device(args.device)
    model = load_trained_model(args.checkpoint).to(device)
    config = model.net_config
    dataset = load_dataset(args.dataset)
    if dataset.num_classes != config.num_classes or dataset.channels != config.in_chs:
        raise ProxylessError(
            f"dataset has {dataset.num_classes} classes x {dataset.channels} channels, the net "
            f"{config.num_classes} x {config.in_chs}", args.dataset,
            "evaluate on the dataset it was trained on")
    if dataset.resolution != config.resolution:
        raise ProxylessError(f"dataset is {dataset.resolution} px, the net was built for {config.resolution}",
                             args.dataset, f"append ?resolution={config.resolution} to the spec")
    batches = test_batches(dataset, args.batch_size, device)
    bar = progress_bar(len(batches), desc="eval", unit="batch", enabled=not args.no_progress)
    result = evaluate(model, batches, dataset.num_classes, progress=bar)
    bar.close()
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    report = {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "samples": result.samples,
              "top1": result.top1, "top5": result.top5, "loss": result.loss,
              "per_class": dict(zip(dataset.class_names, result.per_class)),
              "confusion": result.confusion, "class_names": list(dataset.class_names)}
    stem = Path(args.checkpoint).stem
    write_json_atomic(out / f"eval-{stem}.json", report)
    plot_confusion(result.confusion, dataset.class_names, out / f"confusion-{stem}.png",
                   title=f"{stem} on {dataset.name}: top-1 {result.top1:.2f}%")
    print(f"top1 {result.top1:.2f}  top5 {result.top5:.2f}  loss {result.loss:.4f}  "
          f"({result.samples} images)")
    for name, accuracy in zip(dataset.class_names, result.per_class):
        print(f"  {name:>20s} {accuracy:6.2f}")
    print(f"wrote {out / f'eval-{stem}.json'} and {out / f'confusion-{stem}.png'}")
    return 0
