"""Shared look: colours by kernel size, shades by expand ratio (figures: proxylessnas.figures)."""

from __future__ import annotations

from matplotlib.colors import to_rgb

from proxylessnas.space import OpSpec

KERNEL_COLOURS = {1: "#9e9e9e", 3: "#4c9be8", 5: "#f0a830", 7: "#e0524d", 9: "#8e5cc4"}
ZERO_COLOUR = "#d9d9d9"


def kernel_colour(kernel_size: int) -> str:
    return KERNEL_COLOURS.get(kernel_size, "#5aa469")


def op_colour(op: OpSpec) -> tuple[float, float, float]:
    """Hue by kernel size, lighter for small expand ratios (e1 lightest, e6 full colour)."""
    if op.is_zero:
        return to_rgb(ZERO_COLOUR)
    base = to_rgb(kernel_colour(op.kernel_size))
    mix = max(0.0, min(1.0, (6 - op.expand_ratio) / 8))
    return tuple(c + (1 - c) * mix for c in base)  # type: ignore[return-value]


def op_label(op: OpSpec) -> str:
    """'MB6 5x5' as in the paper's figure; 'skip' for zero."""
    return "skip" if op.is_zero else f"MB{op.expand_ratio} {op.kernel_size}x{op.kernel_size}"
