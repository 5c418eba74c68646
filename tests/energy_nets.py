"""The spec's Langevin step size and an energy net whose gradient is exactly zero, for the EBM tests of both lanes."""

from __future__ import annotations

import torch

from genlab.models.ebm import EbmNetConfig, build_ebm

EPS = 1.25e-2  # the spec's Langevin step size, [-1,1] units


def zero_energy_net() -> torch.nn.Module:
    """A real conv EBM with every weight zeroed: G(x) = 0 everywhere, so its gradient is exactly 0."""
    net = build_ebm(EbmNetConfig(nf=4))
    for param in net.parameters():
        param.data.zero_()
    return net.eval().requires_grad_(False)
