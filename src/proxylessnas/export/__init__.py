"""Export: ONNX (dynamic batch) and TorchScript with an output-parity check, safetensors weights,
and a model card JSON. ``proxyless export`` is :mod:`proxylessnas.export.commands`."""

from proxylessnas.export.card import measure_latency, model_card
from proxylessnas.export.formats import ExportResult, export_model, export_onnx, export_torchscript
from proxylessnas.export.parity import PARITY_TOLERANCE, ParityReport, check_parity, random_inputs
from proxylessnas.nets.weights import load_exported_weights, save_exported_weights

__all__ = ["PARITY_TOLERANCE", "ExportResult", "ParityReport", "check_parity", "export_model", "export_onnx",
           "export_torchscript", "load_exported_weights", "measure_latency", "model_card", "random_inputs",
           "save_exported_weights"]
