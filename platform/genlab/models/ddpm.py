"""DDPM noise-prediction networks: diffusers' `UNet2DModel`, sized by `DdpmNetConfig` (never a hand-written UNet).

`DdpmUNet` wraps the diffusers model so that, like the EBM nets, it carries its genlab config
(`net.config`, stored by `genlab.checkpoints` beside the weights) and returns the predicted noise
eps_theta(x_t, t) as a plain tensor.

Sizes:
- `PAPER_UNET_32`: the spec's 32x32 RGB layout (puregen.md §3.1, diffusers' `train_unconditional`
  layout): channels 128, 128, 256, 256, 512, 512, two ResNet layers per block, attention at the
  fifth level (down) / second level (up); about 114 M parameters.
- The `DdpmNetConfig` defaults: a tiny three-level UNet for the embedded digits set (16x16 grey,
  channels 8, 16, 16, one layer per block, attention at 8x8; about 71 k parameters) that trains
  in a few CPU minutes and purifies about 1,500 images x steps per second on one CPU core.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from genlab.config import StrictModel

CHECKPOINT_KIND = "ddpm"  # `kind` of a trained UNet's checkpoint (written by train_ddpm, loaded by the ddpm purifier)
DownBlock = Literal["DownBlock2D", "AttnDownBlock2D"]
UpBlock = Literal["UpBlock2D", "AttnUpBlock2D"]


class DdpmNetConfig(StrictModel):
    """The UNet's size; every field maps to the `UNet2DModel` argument of the same name."""

    sample_size: int = Field(16, ge=8)  # image side length H = W, pixels
    channels: int = Field(1, ge=1)  # image channels (1 grey, 3 RGB): the UNet's in and out channels
    block_out_channels: list[int] = Field(default_factory=lambda: [8, 16, 16])  # channels per resolution level
    down_block_types: list[DownBlock] = Field(  # one per level, highest resolution first
        default_factory=lambda: ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"])
    up_block_types: list[UpBlock] = Field(  # one per level, lowest resolution first
        default_factory=lambda: ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"])
    layers_per_block: int = Field(1, ge=1)  # ResNet layers per down block (up blocks get one more)
    norm_num_groups: int = Field(4, ge=1)  # GroupNorm groups; must divide every level's channels
    attention_head_dim: int = Field(8, ge=1)  # channels per attention head in the attention blocks
    dropout: float = Field(0.0, ge=0, lt=1)  # dropout in the ResNet layers (the paper: 0)

    @model_validator(mode="after")
    def _consistent(self) -> "DdpmNetConfig":
        levels = len(self.block_out_channels)
        if not levels or len(self.down_block_types) != levels or len(self.up_block_types) != levels:
            raise ValueError(f"block_out_channels, down_block_types and up_block_types need the same (non-zero) "
                             f"length, got {levels}, {len(self.down_block_types)}, {len(self.up_block_types)}")
        if self.sample_size % 2 ** (levels - 1):
            raise ValueError(f"sample_size {self.sample_size} must be divisible by 2^{levels - 1} "
                             f"({levels} levels halve it {levels - 1} times)")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(f"norm_num_groups {self.norm_num_groups} must divide every block_out_channels value "
                             f"{self.block_out_channels}")
        attention = [c for c, kind in zip(self.block_out_channels, self.down_block_types) if kind.startswith("Attn")]
        attention += [c for c, kind in zip(self.block_out_channels[::-1], self.up_block_types) if kind.startswith("Attn")]
        if any(c % self.attention_head_dim for c in attention):
            raise ValueError(f"attention_head_dim {self.attention_head_dim} must divide the channels of every attention "
                             f"level {sorted(set(attention))}")
        return self


PAPER_UNET_32 = DdpmNetConfig(
    sample_size=32, channels=3, block_out_channels=[128, 128, 256, 256, 512, 512],
    down_block_types=["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    layers_per_block=2, norm_num_groups=32, attention_head_dim=8)


class DdpmUNet(nn.Module):
    """eps_theta(x_t, t): a diffusers `UNet2DModel` that carries its `DdpmNetConfig` as `self.config`."""

    def __init__(self, config: DdpmNetConfig) -> None:
        super().__init__()
        self.config = config
        from diffusers import UNet2DModel  # here, not at the top: 2 s that EBM-only purifier actors never pay

        self.unet = UNet2DModel(
            sample_size=config.sample_size, in_channels=config.channels, out_channels=config.channels,
            block_out_channels=tuple(config.block_out_channels), down_block_types=tuple(config.down_block_types),
            up_block_types=tuple(config.up_block_types), layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups, attention_head_dim=config.attention_head_dim,
            dropout=config.dropout)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Return the predicted noise [N, C, H, W] for noisy images x_t [N, C, H, W] ([-1, 1] scale) at int64 timesteps [N]."""
        return self.unet(x, timesteps).sample


def build_unet(config: DdpmNetConfig) -> DdpmUNet:
    """Return an untrained (diffusers-initialised) noise-prediction UNet for `config`."""
    return DdpmUNet(config)
