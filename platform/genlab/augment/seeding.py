"""Seeds derived from the config seed and a label, so every stage and pair draws its own stream."""

from __future__ import annotations

import zlib

import torch


def derive_seed(seed: int, *labels: str) -> int:
    """Return a 32-bit seed from `seed` and the labels, the same in every process.

    32 bits because torch's CPU generator ignores the higher bits of a seed.
    """
    return zlib.crc32("|".join([str(seed), *labels]).encode())


def seeded_generator(seed: int, *labels: str) -> torch.Generator:
    """Return a CPU torch.Generator seeded by `derive_seed(seed, *labels)`."""
    return torch.Generator().manual_seed(derive_seed(seed, *labels))
