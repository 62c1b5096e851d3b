"""INT8 ONNX export, calibrated on the net's own training images and checked on its test images.

The FP32 ONNX file is written first (with its usual 1e-4 parity check), then quantised statically
by ONNX Runtime's QDQ quantiser (:func:`~proxylessnas.hardware.quantize.onnxruntime_int8`:
per-channel int8 weights, uint8 activations, min-max ranges). The ranges come from
``calibration_images`` class-balanced training images (:func:`default_calibration_images`),
normalised as in training: synthetic inputs would set ranges that real images overflow. An INT8
net cannot match FP32 to 1e-4, so the check is the one a deployment cares about: on
``check_images`` class-balanced test images, the share of images where INT8 and FP32 predict the
same class (``agreement``) and both top-1 accuracies. The file is written only when the agreement
is at least ``min_agreement``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from proxylessnas.errors import ProxylessError

CALIBRATION_IMAGES = {"small": 512, "large": 100}  # inputs up to 64 px, and larger (memory: below)
CHECK_IMAGES = 1000
MIN_AGREEMENT = 0.95


@dataclass(frozen=True)
class Int8Report:
    """How the INT8 net was calibrated and how closely it follows the FP32 net."""

    calibration_images: int
    check_images: int
    agreement: float  # share of check images with the same predicted class in INT8 and FP32
    fp32_top1: float  # percent
    int8_top1: float  # percent
    min_agreement: float

    @property
    def passed(self) -> bool:
        return self.agreement >= self.min_agreement

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed,
                "quantisation": "ONNX Runtime static QDQ: int8 weights per channel, uint8 activations, "
                                "min-max ranges on the calibration images"}


def default_calibration_images(resolution: int) -> int:
    """512 images for inputs up to 64 px, 100 above: ONNX Runtime's calibrator holds every
    image's intermediate outputs until the end (MobileNetV2 at 224 px: 78 MB of layer outputs an
    image in PyTorch, counted)."""
    return CALIBRATION_IMAGES["small" if resolution <= 64 else "large"]


def image_batches(dataset, part, count: int, normalisation: dict | None, batch_size: int = 100,
                  seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` class-balanced images of ``part`` (all of it when smaller), unaugmented and
    normalised with ``normalisation`` (the training run's mean and std) or the dataset's own."""
    from proxylessnas.data import BatchIterator, split_validation

    if count < len(part):
        part = split_validation(part, count, seed=seed)[1]
    mean, std = (dataset.mean, dataset.std) if not normalisation else (normalisation["mean"],
                                                                       normalisation["std"])
    batches = BatchIterator(part.images, part.labels, batch_size, mean=mean, std=std, augment=False,
                            shuffle=False, horizontal_flip=False)
    return list(batches.epoch(0))


def agreement_report(model: nn.Module, run_int8, check: Sequence[tuple[torch.Tensor, torch.Tensor]],
                     calibration_images: int, min_agreement: float) -> Int8Report:
    """Compare the eager FP32 ``model`` with ``run_int8`` (images -> logits) on ``check``."""
    same = right_fp32 = right_int8 = total = 0
    model.eval()
    with torch.no_grad():
        for images, labels in check:
            fp32 = model(images).argmax(1)
            int8 = torch.as_tensor(run_int8(images)).argmax(1)
            same += int((fp32 == int8).sum())
            right_fp32 += int((fp32 == labels).sum())
            right_int8 += int((int8 == labels).sum())
            total += len(labels)
    if total == 0:
        raise ProxylessError("no test images to check the INT8 net on", "export onnx-int8",
                             "give a dataset with a test split")
    return Int8Report(calibration_images, total, same / total, 100.0 * right_fp32 / total,
                      100.0 * right_int8 / total, min_agreement)


def export_onnx_int8(model: nn.Module, path: str | Path, dataset, *, normalisation: dict | None = None,
                     calibration_images: int | None = None, check_images: int | None = None,
                     min_agreement: float | None = None, tolerance: float = 1e-4) -> Int8Report:
    """Write ``model`` as a static-INT8 ONNX file at ``path`` (dynamic batch axis, input ``input``,
    output ``logits``) when its top-1 agreement with FP32 reaches ``min_agreement``; the report
    either way (a refused file raises :class:`ProxylessError` with the numbers). None takes the
    defaults: :func:`default_calibration_images`, ``CHECK_IMAGES``, ``MIN_AGREEMENT``."""
    import tempfile

    from proxylessnas.export.formats import export_onnx, onnx_session
    from proxylessnas.hardware.quantize import onnxruntime_int8
    from proxylessnas.runtime.atomic import atomic_replace
    from proxylessnas.runtime.runfolder_lock import hold_output_file

    path = Path(path)
    config = model.net_config
    if (dataset.channels, dataset.num_classes) != (config.in_chs, config.num_classes):
        raise ProxylessError(f"the dataset has {dataset.channels} channel(s) and {dataset.num_classes} "
                             f"classes, the net takes {config.in_chs} and gives {config.num_classes}",
                             "export onnx-int8",
                             "calibrate on the dataset the net was trained on (--dataset)")
    count = calibration_images or default_calibration_images(config.resolution)
    check_images = check_images or CHECK_IMAGES
    min_agreement = MIN_AGREEMENT if min_agreement is None else min_agreement
    calibration = [images for images, _ in image_batches(dataset, dataset.train, count, normalisation,
                                                         batch_size=32)]
    check = image_batches(dataset, dataset.test, check_images, normalisation)
    with tempfile.TemporaryDirectory(prefix="proxyless-export-") as folder:
        fp32_path = Path(folder) / "fp32.onnx"
        export_onnx(model, fp32_path, in_chs=config.in_chs, resolution=config.resolution, tolerance=tolerance)
        try:
            quantised = onnxruntime_int8(fp32_path.read_bytes(), calibration)
        except Exception as err:  # the quantiser's own failure, as one line (nothing is written)
            raise ProxylessError(f"ONNX Runtime's quantiser failed: {type(err).__name__}: {err}", str(path),
                                 "not written; export --format onnx and quantise it yourself, or report "
                                 "the net config") from None
    with hold_output_file(path, "onnx-int8 export"), atomic_replace(path, suffix=".onnx") as temporary:
        temporary.write_bytes(quantised)
        session = onnx_session(temporary)
        report = agreement_report(model, lambda x: session.run(["logits"], {"input": x.numpy()})[0], check,
                                  sum(len(x) for x in calibration), min_agreement)
        if not report.passed:  # raised inside the block: the temporary file goes, ``path`` stays
            raise ProxylessError(
                f"the INT8 net agrees with FP32 on {100 * report.agreement:.1f} % of {report.check_images} "
                f"test images (< {100 * min_agreement:g} %; top-1 FP32 {report.fp32_top1:.2f} %, "
                f"INT8 {report.int8_top1:.2f} %)", str(path),
                "not written; export a trained net, give more --calibration-images, or lower --min-agreement")
    return report
