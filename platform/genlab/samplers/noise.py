"""Counter-based per-row Gaussian noise, shared by the Langevin and DDPM samplers.

Noise for row r at step k is a pure function of (seed, row_id, k, element index): a 32-bit
integer hash (lowbias32) feeding Box-Muller, computed with torch integer ops on the chain's
device. A row therefore gets the same noise whatever batch, batch size, actor or device it runs
in, and a GPU batch of thousands of rows needs no per-row generator objects. (CPU and CUDA may
differ in the last float bit of log/cos.)

    keys = row_keys(seed, row_ids, device)          # int64 [N], once per chain
    xi_k = chain_noise(keys, k, (C, H, W))           # float32 [N, C, H, W] ~ N(0, I), per step
"""

from __future__ import annotations

import math

import numpy as np
import torch

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


def row_keys(seed: int, row_ids: torch.Tensor | np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return an int64 [N] key per row from (seed, row_id), on `device`; seeds and row ids are taken mod 2^32.

    `row_ids` must be one-dimensional (one id per image); anything else raises ValueError.
    """
    ids = torch.as_tensor(np.ascontiguousarray(row_ids), dtype=torch.int64, device=device)
    if ids.dim() != 1:
        raise ValueError(f"need one row id per image, got row ids of shape {tuple(ids.shape)}")
    seed_key = _hash32(torch.tensor(seed & _MASK32, dtype=torch.int64, device=ids.device) ^ 0x9E3779B9)
    return _hash32(_hash32(ids & _MASK32) ^ seed_key)


def check_one_key_per_row(keys: torch.Tensor, rows: int) -> None:
    """Raise ValueError unless `keys` holds exactly one key for each of `rows` images."""
    if keys.shape != (rows,):
        raise ValueError(f"need one row id per image: {tuple(keys.shape)} ids for {rows} images")


def chain_noise(keys: torch.Tensor, step: int | torch.Tensor, shape: tuple[int, ...],
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return standard normal noise [N, *shape] for step `step` of the chains with `keys` (from `row_keys`).

    Deterministic in (row key, step, element index) only: independent of batch composition.
    `step` may be a 0-d int64 tensor, so a compiled caller does not recompile per step.
    """
    count = math.prod(shape)
    pairs = (count + 1) // 2
    device = keys.device
    step_key = _hash32(keys ^ _hash32(torch.as_tensor(step, dtype=torch.int64, device=device) + 0x632BE5AB))
    index = torch.arange(pairs, dtype=torch.int64, device=device)
    counter = step_key[:, None] ^ _hash32(2 * index)[None, :]
    u1 = (_hash32(counter).to(torch.float64) + 0.5) * 2.0 ** -32  # in (0, 1)
    u2 = _hash32(counter ^ 0x5BD1E995).to(torch.float64) * 2.0 ** -32  # in [0, 1)
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = 2.0 * math.pi * u2
    normal = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :count]
    return normal.to(dtype).reshape(len(keys), *shape)
