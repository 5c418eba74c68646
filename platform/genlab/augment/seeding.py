"""Seeds derived from the config seed and a label, so every stage and pair draws its own stream."""

from __future__ import annotations

import zlib

import torch


def derive_seed(seed: int, *labels: str) -> int:
    """Return a non-negative 63-bit seed from `seed` and the labels (the same in every process)."""
    return (seed * 2**32 + zlib.crc32("|".join(labels).encode())) % 2**63


def seeded_generator(seed: int, *labels: str) -> torch.Generator:
    """Return a CPU torch.Generator seeded by `derive_seed(seed, *labels)`."""
    return torch.Generator().manual_seed(derive_seed(seed, *labels))
