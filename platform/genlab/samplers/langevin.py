"""Langevin dynamics on an energy net, shared by EBM training (persistent chains) and purification.

The update (spec puregen.md §2, the official code's `ebm_purify`), in [-1, 1] image units:

    x_0 = the input image                  (no initial noise)
    x_k = x_{k-1} - (eps^2 / 2) * grad_x sum_batch G(x_{k-1}) / tau + eps * xi_k,   xi_k ~ N(0, I)

with step size `eps` (1.25e-2) and temperature `tau` (1e-4). There is no clamping, gradient
clipping, Metropolis correction or averaging inside the loop; callers clamp afterwards if they
need valid pixels. One chain yields snapshots at every requested step count, so x_50 and x_150
come from the same chain (and equal separate chains of 50 and 150 steps with the same seed).

Noise: xi_k for row r is drawn from a counter-based generator keyed by (seed, row_id, k, pixel
index) (`chain_noise`): a 32-bit integer hash (lowbias32) feeding Box-Muller, computed with
torch integer ops on the chain's device. A row therefore gets the same noise whatever batch,
batch size, actor or device it runs in, and a GPU batch of thousands of rows needs no per-row
generator objects. (CPU and CUDA may differ in the last float bit of log/cos.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """(x * constant) mod 2^32 for int64 tensors holding values in [0, 2^32), without int64 overflow."""
    low = x * (constant & 0xFFFF)
    high = ((x * (constant >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash of int64 tensors holding 32-bit values; returns values in [0, 2^32)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _row_keys(seed: int, row_ids: torch.Tensor) -> torch.Tensor:
    """Return an int64 [N] key per row from (seed, row_id); seeds and row ids are taken mod 2^32."""
    seed_key = _hash32(torch.tensor(seed & _MASK32, dtype=torch.int64, device=row_ids.device) ^ 0x9E3779B9)
    return _hash32(_hash32(row_ids.to(torch.int64) & _MASK32) ^ seed_key)


def chain_noise(row_keys: torch.Tensor, step: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return standard normal noise [N, *shape] for step `step` of the chains with `row_keys` (from `_row_keys`).

    Deterministic in (row key, step, element index) only: independent of batch composition.
    """
    count = math.prod(shape)
    pairs = (count + 1) // 2
    device = row_keys.device
    step_key = _hash32(row_keys ^ _hash32(torch.tensor(step + 0x632BE5AB, dtype=torch.int64, device=device)))
    index = torch.arange(pairs, dtype=torch.int64, device=device)
    counter = step_key[:, None] ^ _hash32(2 * index)[None, :]
    u1 = (_hash32(counter).to(torch.float64) + 0.5) * 2.0 ** -32  # in (0, 1)
    u2 = _hash32(counter ^ 0x5BD1E995).to(torch.float64) * 2.0 ** -32  # in [0, 1)
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = 2.0 * math.pi * u2
    normal = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :count]
    return normal.to(dtype).reshape(len(row_keys), *shape)


def resolve_device(name: str) -> torch.device:
    """Return the torch device for 'auto' | 'cpu' | 'cuda' | 'cuda:N' ('auto' = cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class LangevinChain:
    """What one run of the sampler produced."""

    snapshots: dict[int, torch.Tensor]  # step count T -> x_T [N, C, H, W] in [-1, 1] units (unclamped), detached
    mean_grad_norm: float  # mean over steps and rows of ||grad_x G(x) / tau||_2 per image
    gradient_evaluations: int  # image-gradient evaluations this run (rows x steps)


class LangevinSampler:
    """Runs Langevin chains x <- x - (eps^2/2) grad G(x)/tau + eps*xi on `energy` (see module docstring).

    The net is used as it is (callers put it in eval mode and on the device they want); chains
    run on the net's device. `gradient_evaluations` counts image-gradient evaluations over the
    sampler's lifetime.
    """

    def __init__(self, energy: nn.Module, *, step_size: float = 1.25e-2, temperature: float = 1e-4) -> None:
        if not step_size > 0 or not temperature > 0:
            raise ValueError(f"Langevin step_size and temperature must be > 0, got {step_size}, {temperature}")
        self.energy = energy
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
        with torch.inference_mode(False), torch.enable_grad():
            x = x.detach()
            x = (x.clone() if x.is_inference() else x).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(x).sum(), x)
        return grad / self.temperature

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
        keys = _row_keys(seed, torch.as_tensor(np.ascontiguousarray(row_ids), dtype=torch.int64, device=device))
        if keys.shape != (len(x),):
            raise ValueError(f"need one row id per image: {tuple(keys.shape)} ids for {len(x)} images")
        drift_scale = self.step_size ** 2 / 2
        snapshots = {0: x.clone()} if wanted[0] == 0 else {}
        grad_norm_sum = torch.zeros((), device=device)
        for k in range(1, wanted[-1] + 1):
            grad = self.energy_gradient(x)
            grad_norm_sum += grad.flatten(1).norm(dim=1).mean()
            x = x - drift_scale * grad + self.step_size * chain_noise(keys, k, tuple(x.shape[1:]))
            if k in wanted:
                snapshots[k] = x.clone()
        evaluations = len(x) * wanted[-1]
        self.gradient_evaluations += evaluations
        mean_norm = float(grad_norm_sum) / wanted[-1] if wanted[-1] else 0.0
        return LangevinChain(snapshots, mean_norm, evaluations)
