"""``proxyless export``: ONNX or TorchScript plus safetensors weights and a model card."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from proxylessnas import arguments
from proxylessnas.errors import ProxylessError

EXAMPLE = """examples:
  proxyless export runs/mbv2/best.pt --format onnx --out exported/mbv2.onnx --latency
  proxyless export mobilenet_v2 --format torchscript --num-classes 10 --resolution 32
  proxyless export runs/search/arch.json --format onnx --dataset cifar10:DIR
  proxyless export runs/mbv2/best.pt --format onnx-int8     # calibrated on the run's own dataset
writes FILE, FILE's stem + .safetensors (weights, net config in the metadata) and + .card.json.
The file is written only if its outputs match eager PyTorch within --tolerance (1e-4); an
onnx-int8 file (static QDQ, calibrated on training images) only if its predicted class agrees
with FP32 on at least --min-agreement of the test images checked.
Exports of one net (same config and weights) share a stem and one card; another net's export
under that stem is refused (give another --out, or --overwrite to replace it)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a checkpoint, arch or zoo net to ONNX or TorchScript",
        description="Export with an output-parity check on random inputs (max abs diff reported; "
                    "refused above the tolerance), safetensors weights and a model card JSON.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="CHECKPOINT|ARCH_JSON|NB201_STRING|ZOO_NAME",
                        help="train checkpoint (.pt), exported weights (.safetensors), arch JSON, "
                             "NAS-Bench-201 string or zoo name")
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript", "onnx-int8"))
    parser.add_argument("--out", metavar="FILE", type=arguments.new_file,
                        help="output file (default: exported/<name>.onnx|.torchscript.pt)")
    parser.add_argument("--dataset", metavar="SPEC", help="size an arch/zoo net for this dataset")
    parser.add_argument("--num-classes", type=arguments.num_classes,
                        help="classes of an arch/zoo net (default: 1000 for zoo)")
    parser.add_argument("--resolution", type=arguments.resolution,
                        help="input size of an arch/zoo net (default: 224 for zoo)")
    parser.add_argument("--in-chs", type=arguments.channels, default=None,
                        help="input channels of an arch/zoo net (3)")
    parser.add_argument("--weights", metavar="FILE", type=arguments.existing_file,
                        help="weights for an arch/zoo net (safetensors or .pt)")
    parser.add_argument("--tolerance", type=arguments.positive_float, default=1e-4,
                        help="largest allowed output difference")
    parser.add_argument("--calibration-images", type=arguments.positive_int, default=None,
                        help="onnx-int8: training images that set the activation ranges "
                             "(default 512; 100 above 64 px)")
    parser.add_argument("--check-images", type=arguments.positive_int, default=None,
                        help="onnx-int8: test images on which INT8 and FP32 are compared (default 1000)")
    parser.add_argument("--min-agreement", type=arguments.unit_interval, default=None,
                        help="onnx-int8: least share of check images with FP32's class (default 0.95)")
    parser.add_argument("--latency", action="store_true",
                        help="measure latency for the card (torch, TorchScript, ONNX Runtime on CPU; CUDA)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the export of another net (or weights) under the same name")
    parser.set_defaults(func=run_export)


def _source_model(args):
    """(model, info) where info has name, dataset, accuracy, arch, normalisation when known."""
    from proxylessnas.nets.weights import load_weights
    from proxylessnas.runtime.checkpoint import load_checkpoint
    from proxylessnas.train.commands import load_trained_model
    from proxylessnas.train.target import build_target

    source = Path(args.source)
    if source.suffix in (".pt", ".pth", ".safetensors") and source.exists():
        model = load_trained_model(source)
        info: dict = {"name": model.net_config.name or source.stem}
        if source.suffix != ".safetensors":
            state = load_checkpoint(source)
            run = state.get("run", {})
            info.update(dataset=run.get("dataset_spec") or run.get("dataset"), arch=run.get("arch"),
                        normalisation=run.get("normalisation"),
                        accuracy={"test_top1": state.get("best_top1"), "epochs_trained": state.get("epoch")}
                        if state.get("best_top1") is not None and state.get("best_top1") > float("-inf")
                        else None)
        return model, info
    num_classes, resolution, in_chs = args.num_classes, args.resolution, args.in_chs
    dataset_info = {}
    if args.dataset:
        from proxylessnas.data import load_dataset

        dataset = load_dataset(args.dataset)
        num_classes = num_classes or dataset.num_classes
        resolution = resolution or dataset.resolution
        in_chs = in_chs or dataset.channels
        dataset_info = {"dataset": args.dataset,
                        "normalisation": {"mean": list(dataset.mean), "std": list(dataset.std)}}
    from proxylessnas.nets.zoo import ZOO
    from proxylessnas.space.nasbench201 import is_arch_string

    if args.source in ZOO:  # the entry's own size: 1000 classes at 224, or 10 at 32 (proxyless_cifar)
        num_classes = num_classes or ZOO[args.source].default_num_classes
        resolution = resolution or ZOO[args.source].default_resolution
    if args.source not in ZOO and (source.exists() or is_arch_string(args.source)) and (
            num_classes is None or resolution is None):
        from proxylessnas.space.arch import load_arch_or_string

        space = load_arch_or_string(args.source).resolve_space()
        num_classes = num_classes or space.head.num_classes
        resolution = resolution or space.resolution
    model, description = build_target(args.source, num_classes or 1000, resolution or 224, in_chs or 3)
    if args.weights:
        load_weights(model, args.weights)
    return model, {"name": model.net_config.name or source.stem, "arch": description.get("arch"),
                   **dataset_info}


def _int8_dataset(args, info: dict):
    """The dataset that calibrates and checks an INT8 export: --dataset, else the training run's."""
    from proxylessnas.data import load_dataset

    spec = args.dataset or info.get("dataset")
    if not spec:
        raise ProxylessError("an INT8 export needs images to calibrate on and to check against",
                             "--format onnx-int8",
                             "give --dataset SPEC (the dataset the net was trained on), or export a training "
                             "checkpoint, which names its own")
    return load_dataset(spec)


def file_stem(name: str) -> str:
    """``name`` as a file stem: letters, digits, ``-`` and ``_`` only (a net's name may be anything)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).strip("_") or "net"


def run_export(args) -> int:
    from proxylessnas.export.card import measure_latency, model_card
    from proxylessnas.export.fileset import NetIdentity, export_base, plan_export
    from proxylessnas.export.formats import SUFFIXES, export_model
    from proxylessnas.nets.weights import save_exported_weights
    from proxylessnas.runtime.atomic import write_json_atomic
    from proxylessnas.runtime.runfolder_lock import hold_output_file

    if args.out:
        arguments.require_suffix(args.out, SUFFIXES[args.format], f"--out for --format {args.format}")
        export_base(Path(args.out))
    int8 = args.format == "onnx-int8"
    int8_only = {"--calibration-images": args.calibration_images, "--check-images": args.check_images,
                 "--min-agreement": args.min_agreement}
    for flag, value in int8_only.items():
        if value is not None and not int8:
            raise ProxylessError(f"{flag} applies to --format onnx-int8 only", flag,
                                 "drop it, or export with --format onnx-int8")
    model, info = _source_model(args)
    model = model.cpu().eval()
    calibration_data = _int8_dataset(args, info) if int8 else None  # a bad dataset fails before writing
    default_suffix = {"onnx": ".onnx", "onnx-int8": ".int8.onnx",
                      "torchscript": ".torchscript" + SUFFIXES["torchscript"]}[args.format]
    out = Path(args.out) if args.out else Path("exported") / f"{file_stem(info['name'])}{default_suffix}"
    identity = NetIdentity.of(model)
    with hold_output_file(export_base(out), "export"):  # model, weights and card of one base name: one set
        plan = plan_export(out, args.format, identity, overwrite=args.overwrite)
        config = model.net_config
        if int8:
            from proxylessnas.export.int8 import export_onnx_int8

            report = export_onnx_int8(
                model, out, calibration_data, normalisation=info.get("normalisation"),
                calibration_images=args.calibration_images, check_images=args.check_images,
                min_agreement=args.min_agreement, tolerance=args.tolerance)
            entry, summary = report.to_dict(), (
                f"INT8 agrees with FP32 on {100 * report.agreement:.1f} % of {report.check_images} test "
                "images; "
                f"top-1 FP32 {report.fp32_top1:.2f} %, INT8 {report.int8_top1:.2f} %; "
                f"calibrated on {report.calibration_images} training images")
        else:
            result = export_model(model, out, args.format, in_chs=config.in_chs, resolution=config.resolution,
                                  tolerance=args.tolerance)
            entry, summary = {"max_abs_diff": result.parity.max_abs_diff, **result.parity.to_dict()}, (
                f"max abs diff vs eager {result.parity.max_abs_diff:.3g} on batches "
                f"{list(result.parity.batch_sizes)}")
        weights = save_exported_weights(model, plan.weights_path)
        latency = None
        if args.latency:
            import torch

            backends = ["torch-cpu", "torchscript-cpu", "onnxruntime-cpu"]
            if torch.cuda.is_available():
                backends.append("torch-cuda")
            latency = measure_latency(model, backends)
        card = model_card(model, source=str(args.source), exports={args.format: {"file": out.name, **entry}},
            weights_file=weights.name, dataset=info.get("dataset"), accuracy=info.get("accuracy"),
            latency=latency, arch=info.get("arch"), normalisation=info.get("normalisation"),
            weights_sha256=identity.weights_sha256)
        write_json_atomic(plan.card_path, plan.merged_card(card, args.format))
        plan.remove_stale({out, weights, plan.card_path})
    print(f"wrote {out} ({args.format}; {summary}), {weights}, {plan.card_path}")
    if latency:
        for label, entry in latency.items():
            print(f"  latency {label}: {entry['median_ms']:.3f} ms (median, batch 1)")
    return 0
