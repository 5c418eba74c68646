"""LAVAE latent augmentation maps: one learned matrix L_a in R^{d x d} per augmentation (spec latent_aug §3.1).

A map acts on row vectors, z_a = z L_a, so "a1 then a2" is z L_{a1} L_{a2}. An
involutive augmentation (a(a(x)) = x) should have L_a^2 = I; `involution_error` is
||I - L_a^2||_F.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LatentMaps(nn.Module):
    """Named d x d matrices, Xavier-uniform initialised, applied by right multiplication."""

    def __init__(self, names: Sequence[str], latent_dim: int) -> None:
        super().__init__()
        self.names = list(names)
        self.matrices = nn.ParameterDict({
            name: nn.Parameter(nn.init.xavier_uniform_(torch.empty(latent_dim, latent_dim))) for name in self.names})

    def forward(self, latents: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """Return latents [N, d] multiplied on the right by L_{names[0]} L_{names[1]} ... in that order."""
        for name in names:
            latents = latents @ self.matrices[name]
        return latents

    def involution_error(self, name: str) -> torch.Tensor:
        """Return ||I - L_name^2||_F (a scalar tensor, >= 0; 0 for an exact involution)."""
        matrix = self.matrices[name]
        identity = torch.eye(len(matrix), device=matrix.device, dtype=matrix.dtype)
        return torch.linalg.matrix_norm(identity - matrix @ matrix)
