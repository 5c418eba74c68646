"""Per-image VAE losses, in nats: pixel BCE summed over the image, and the Gaussian KL term."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_per_image(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return binary cross-entropy summed over pixels, one value per image ([N], nats, >= 0)."""
    return F.binary_cross_entropy(reconstruction, target, reduction="none").flatten(1).sum(1)


def kl_per_image(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Return KL(N(mu, diag exp(logvar)) || N(0, I)) per row ([N], nats, >= 0)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
