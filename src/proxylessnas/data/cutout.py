"""Cutout (DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with
Cutout", 2017): one square of every training image set to zero, on a whole batch at once.

Image b keeps pixel (i, j) unless y_b - L // 2 <= i < y_b - L // 2 + L and
x_b - L // 2 <= j < x_b - L // 2 + L, with the centre (y_b, x_b) uniform over the image's
pixels, so the square may lie partly outside the image (as the paper's: the cut area is then
smaller). Applied after normalisation, so a cut pixel is the dataset's mean colour. L = 16 on
CIFAR-10 is the paper's best size.
"""

from __future__ import annotations

import numpy as np
import torch


def draw_centres(rng: np.random.Generator, count: int, height: int, width: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres (y, x) of ``count`` cut-out squares, uniform over the pixels of an image."""
    return (torch.from_numpy(rng.integers(0, height, count)), torch.from_numpy(rng.integers(0, width, count)))


def cutout_mask(centres_y: torch.Tensor, centres_x: torch.Tensor, size: int, height: int, width: int,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 1, H, W) float mask: 0 inside each image's square of side ``size``, 1 elsewhere."""
    top = centres_y.to(device)[:, None] - size // 2
    left = centres_x.to(device)[:, None] - size // 2
    rows = torch.arange(height, device=device)[None, :]
    cols = torch.arange(width, device=device)[None, :]
    inside_y = (rows >= top) & (rows < top + size)  # (B, H)
    inside_x = (cols >= left) & (cols < left + size)  # (B, W)
    cut = inside_y[:, :, None] & inside_x[:, None, :]
    return (~cut).unsqueeze(1).float()


def apply_cutout(images: torch.Tensor, centres_y: torch.Tensor, centres_x: torch.Tensor,
                 size: int) -> torch.Tensor:
    """``images`` (B, C, H, W) with each image's square set to zero (see the module docstring)."""
    height, width = images.shape[-2:]
    mask = cutout_mask(centres_y, centres_x, size, height, width, images.device)
    return images * mask.to(images.dtype)
