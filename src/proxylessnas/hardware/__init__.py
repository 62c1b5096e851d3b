"""Hardware cost models: layer keys, latency tables, MACs, measurement, predictor, validation."""

from proxylessnas.hardware.cost import CostModel, FlopsCostModel, KeyCostModel, TableCostModel
from proxylessnas.hardware.keys import GraphSpaceKeys, LayerKey, SpaceKeys, arch_keys, space_keys
from proxylessnas.hardware.lut import LatencyStats, LatencyTable, TableTarget
from proxylessnas.hardware.measure import Backend
from proxylessnas.hardware.predictor import LatencyPredictor, PredictedCostModel, fit_predictor
from proxylessnas.hardware.targets import cache_root, cached_table_path, get_cost_model, get_table

__all__ = ["Backend", "CostModel", "FlopsCostModel", "GraphSpaceKeys", "KeyCostModel", "LatencyPredictor",
           "LatencyStats", "LatencyTable", "LayerKey", "PredictedCostModel", "SpaceKeys", "TableCostModel",
           "TableTarget", "arch_keys", "cache_root", "cached_table_path", "fit_predictor", "get_cost_model",
           "get_table", "space_keys"]
