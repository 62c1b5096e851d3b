"""The entropy of an architecture distribution as the plots read it from metrics rows (lists of
probabilities). The rows themselves, their format and the one reader and writer of
``metrics.jsonl``: :mod:`proxylessnas.runtime.metrics`."""

from __future__ import annotations

import math
from collections.abc import Sequence


def entropy(probs: Sequence[Sequence[float]]) -> float:
    """Sum over layers of -sum_j p_j ln p_j (nats)."""
    return -sum(p * math.log(p) for layer in probs for p in layer if p > 0)
