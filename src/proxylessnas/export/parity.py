"""Output parity between the eager model and an exported one, on random inputs.

The exported file is written only when max |y_eager - y_exported| over every test input is at
most ``PARITY_TOLERANCE`` (1e-4, float32 logits) and no output, eager or exported, is NaN or
infinite (NaN compares as no difference, so a model that outputs only NaN would pass on the
difference alone); otherwise the export is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PARITY_TOLERANCE = 1e-4
PARITY_BATCH_SIZES = (1, 3)  # two sizes, so a batch axis that is not dynamic fails the check


@dataclass(frozen=True)
class ParityReport:
    """Largest absolute output difference (where both outputs are finite) and the count of NaN or
    infinite outputs of each side, over ``batch_sizes`` x ``trials`` random inputs."""

    max_abs_diff: float
    batch_sizes: tuple[int, ...]
    trials: int
    tolerance: float
    nonfinite_eager: int = 0
    nonfinite_exported: int = 0

    @property
    def passed(self) -> bool:
        finite = self.nonfinite_eager == 0 and self.nonfinite_exported == 0
        return finite and self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "batch_sizes": list(self.batch_sizes),
                "trials": self.trials, "tolerance": self.tolerance, "nonfinite_eager": self.nonfinite_eager,
                "nonfinite_exported": self.nonfinite_exported, "passed": self.passed}


def random_inputs(in_chs: int, resolution: int, batch_sizes: Sequence[int] = PARITY_BATCH_SIZES,
                  trials: int = 2, seed: int = 0) -> list[torch.Tensor]:
    """Standard-normal images (the scale of normalised data), seeded."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(b, in_chs, resolution, resolution, generator=generator)
            for _ in range(trials) for b in batch_sizes]


@torch.no_grad()
def check_parity(model: nn.Module, run_exported: Callable[[torch.Tensor], np.ndarray | torch.Tensor],
                 inputs: Sequence[torch.Tensor], tolerance: float = PARITY_TOLERANCE) -> ParityReport:
    """Compare ``model(x)`` (eval mode) with ``run_exported(x)`` on every input."""
    model.eval()
    worst = 0.0
    bad_eager = bad_exported = 0
    for x in inputs:
        expected = model(x).float().numpy()
        got = run_exported(x)
        got = got.detach().float().numpy() if isinstance(got, torch.Tensor) else np.asarray(got, np.float32)
        if got.shape != expected.shape:
            return ParityReport(float("inf"), tuple(sorted({len(i) for i in inputs})), 0, tolerance)
        finite_eager, finite_exported = np.isfinite(expected), np.isfinite(got)
        bad_eager += int((~finite_eager).sum())
        bad_exported += int((~finite_exported).sum())
        both = finite_eager & finite_exported
        if both.any():
            worst = max(worst, float(np.abs(got[both] - expected[both]).max()))
    batch_sizes = tuple(dict.fromkeys(len(x) for x in inputs))
    return ParityReport(worst, batch_sizes, len(inputs) // max(1, len(batch_sizes)), tolerance,
                        bad_eager, bad_exported)
