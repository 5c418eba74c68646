"""Langevin dynamics on an energy net, shared by EBM training (persistent chains) and purification.

The update (spec puregen.md §2, the official code's `ebm_purify`), in [-1, 1] image units:

    x_0 = the input image                  (no initial noise)
    x_k = x_{k-1} - (eps^2 / 2) * grad_x sum_batch G(x_{k-1}) / tau + eps * xi_k,   xi_k ~ N(0, I)

with step size `eps` (1.25e-2) and temperature `tau` (1e-4). There is no clamping, gradient
clipping, Metropolis correction or averaging inside the loop; callers clamp afterwards if they
need valid pixels. One chain yields snapshots at every requested step count, so x_50 and x_150
come from the same chain (and equal separate chains of 50 and 150 steps with the same seed).

Noise: xi_k for row r is counter-based, keyed by (seed, row_id, k, pixel index)
(`genlab.samplers.noise`), so a row gets the same chain whatever batch, batch size, actor or
device it runs in.

Speed options (`genlab.samplers.speed.NetRunner`: precision, channels_last, dense_convs, compile) change how
the gradient is computed, not the update; the official code's loop is fp32, eager, with one
autograd call per step, which is also what this sampler does by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from genlab.samplers.noise import check_one_key_per_row, row_keys
from genlab.samplers.speed import NetRunner, Precision


@dataclass(frozen=True)
class LangevinChain:
    """What one run of the sampler produced."""

    snapshots: dict[int, torch.Tensor]  # step count T -> x_T [N, C, H, W] in [-1, 1] units (unclamped), detached
    mean_grad_norm: float  # mean over steps and rows of ||grad_x G(x) / tau||_2 per image
    gradient_evaluations: int  # image-gradient evaluations this run (rows x steps)


class LangevinSampler:
    """Runs Langevin chains x <- x - (eps^2/2) grad G(x)/tau + eps*xi on `energy` (see module docstring).

    The net is used as it is (callers put it in eval mode and on the device they want); chains
    run on the net's device. `precision`, `channels_last`, `dense_convs` and `compile` are the speed options of
    `genlab.samplers.speed` (defaults: the official loop, fp32 and eager). `gradient_evaluations`
    counts image-gradient evaluations over the sampler's lifetime.
    """

    def __init__(self, energy: nn.Module, *, step_size: float = 1.25e-2, temperature: float = 1e-4,
                 precision: Precision = "fp32", channels_last: bool = False, dense_convs: bool = False,
                 compile: bool = False) -> None:
        if not step_size > 0 or not temperature > 0:
            raise ValueError(f"Langevin step_size and temperature must be > 0, got {step_size}, {temperature}")
        self.energy = energy
        self.runner = NetRunner(energy, precision=precision, channels_last=channels_last, dense_convs=dense_convs,
                                compile=compile)
        self.step_size = step_size
        self.temperature = temperature
        self.gradient_evaluations = 0

    @property
    def device(self) -> torch.device:
        """The device the chains run on (the energy net's)."""
        return next(self.energy.parameters()).device

    def energy_gradient(self, x: torch.Tensor) -> torch.Tensor:
        """Return grad_x sum_batch G(x) / tau for images x [N, C, H, W] (no graph kept).

        Works inside `torch.no_grad()` / `torch.inference_mode()` callers (e.g. a Ray Data actor).
        """
        return self._energy_sum_gradient(x) / self.temperature

    def _energy_sum_gradient(self, x: torch.Tensor) -> torch.Tensor:
        """Return grad_x sum_batch G(x) (no temperature), in `x`'s memory format."""
        with torch.inference_mode(False), torch.enable_grad():
            x = x.detach()
            x = (x.clone() if x.is_inference() else x).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.runner(x).sum(), x)
        return grad

    def run(self, x0: torch.Tensor, *, steps: int | list[int], seed: int, row_ids: torch.Tensor | np.ndarray) -> LangevinChain:
        """Run one chain per row of `x0` for max(steps) steps; return snapshots at every requested step count.

        x0: float [N, C, H, W] in [-1, 1] units (moved to the sampler's device); steps: step
        counts T >= 0 to snapshot (0 returns x0 itself); seed and row_ids (int, < 2^32) key the
        per-row noise, so the same (seed, row_id) always gets the same chain.
        """
        wanted = sorted({steps} if isinstance(steps, int) else set(steps))
        if not wanted or wanted[0] < 0:
            raise ValueError(f"Langevin step counts must be >= 0, got {steps}")
        device = self.device
        x = x0.detach().to(device=device, dtype=torch.float32)
        keys = row_keys(seed, row_ids, device)
        check_one_key_per_row(keys, len(x))
        drift = self.step_size ** 2 / 2 / self.temperature  # (eps^2 / 2) / tau, applied to grad sum G in one op
        snapshots = {0: x.clone()} if wanted[0] == 0 else {}
        grad_norm_sum = torch.zeros((), device=device)
        for k in range(1, wanted[-1] + 1):
            grad = self._energy_sum_gradient(x)
            grad_norm_sum += grad.flatten(1).norm(dim=1).mean()
            x = torch.add(x, grad, alpha=-drift).add_(self.runner.step_noise(keys, k, tuple(x.shape[1:])),
                                                      alpha=self.step_size)
            if k in wanted:
                snapshots[k] = x.clone()
        evaluations = len(x) * wanted[-1]
        self.gradient_evaluations += evaluations
        mean_norm = float(grad_norm_sum) / self.temperature / wanted[-1] if wanted[-1] else 0.0
        return LangevinChain(snapshots, mean_norm, evaluations)
