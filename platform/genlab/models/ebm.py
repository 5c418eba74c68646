"""Energy networks G_theta: image in [-1, 1] -> one scalar energy per image (lower = more natural).

Two architectures (spec puregen.md §2.1), both without any normalisation layer (so the
samples of a batch stay independent), Xavier-uniform weights and zero biases, and a global
spatial mean before the last layer, so one net accepts any image size >= 8 and the channel
count it was built for:

- `conv`: the small 5-conv EBM of the official code (LeakyReLU 0.05, widths nf*{1,2,4,8}):
  conv3x3 -> three stride-2 conv4x4 -> conv3x3 to one channel -> spatial mean.
- `resnet`: the SNGAN-discriminator-style residual EBM `EBMSNGAN32` (no spectral norm):
  an "optimized" down block, a down block, two identity blocks, ReLU -> spatial mean ->
  Linear(nf -> 1, no bias). With nf=128 and 3 channels it has about 1.05 M parameters.

Every net carries its `EbmNetConfig` (`net.config`), which checkpoints store beside the weights.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from genlab.config import StrictModel


class EbmNetConfig(StrictModel):
    """Which energy network to build and its size."""

    arch: Literal["conv", "resnet"] = "conv"  # conv: small 5-conv EBM; resnet: SNGAN-discriminator residual EBM
    channels: int = Field(1, ge=1)  # image channels the net takes (1 grey, 3 RGB)
    nf: int = Field(32, ge=1)  # base filter count (the papers' resnet: 128)


def _xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every conv and linear layer."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ConvEBM(nn.Module):
    """The small 5-conv EBM: widths nf, 2nf, 4nf, 8nf with LeakyReLU(0.05), then 1 channel averaged."""

    def __init__(self, config: EbmNetConfig) -> None:
        super().__init__()
        self.config = config
        nf, c = config.nf, config.channels
        self.layers = nn.Sequential(
            nn.Conv2d(c, nf, 3, 1, 1), nn.LeakyReLU(0.05),
            nn.Conv2d(nf, 2 * nf, 4, 2, 1), nn.LeakyReLU(0.05),
            nn.Conv2d(2 * nf, 4 * nf, 4, 2, 1), nn.LeakyReLU(0.05),
            nn.Conv2d(4 * nf, 8 * nf, 4, 2, 1), nn.LeakyReLU(0.05),
            nn.Conv2d(8 * nf, 1, 3, 1, 1),
        )
        _xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return energies [N] for images [N, C, H, W] in [-1, 1] (H, W >= 8)."""
        return self.layers(x).mean(dim=(1, 2, 3))


class _ResidualBlock(nn.Module):
    """SNGAN discriminator block: (ReLU) conv3x3 -> ReLU -> conv3x3 (-> avgpool2), plus a shortcut.

    `optimized` is the first block: no ReLU before the first conv, and the shortcut pools
    before its 1x1 conv. Other blocks use a 1x1 conv then pool when they downsample or change
    width, else the identity.
    """

    def __init__(self, c_in: int, c_out: int, *, downsample: bool, optimized: bool) -> None:
        super().__init__()
        self.downsample, self.optimized = downsample, optimized
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, 1, 0) if (downsample or c_in != c_out) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.optimized else F.relu(x))))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.optimized:
            return h + self.shortcut(F.avg_pool2d(x, 2))
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.downsample else s)


class ResNetEBM(nn.Module):
    """EBMSNGAN32: optimized down block, down block, two identity blocks, ReLU, mean, Linear(nf, 1)."""

    def __init__(self, config: EbmNetConfig) -> None:
        super().__init__()
        self.config = config
        nf = config.nf
        self.blocks = nn.Sequential(
            _ResidualBlock(config.channels, nf, downsample=True, optimized=True),
            _ResidualBlock(nf, nf, downsample=True, optimized=False),
            _ResidualBlock(nf, nf, downsample=False, optimized=False),
            _ResidualBlock(nf, nf, downsample=False, optimized=False),
        )
        self.head = nn.Linear(nf, 1, bias=False)
        _xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return energies [N] for images [N, C, H, W] in [-1, 1] (H, W >= 4)."""
        return self.head(F.relu(self.blocks(x)).mean(dim=(2, 3))).squeeze(1)


def build_ebm(config: EbmNetConfig) -> nn.Module:
    """Return an untrained (Xavier-initialised) energy network for `config`."""
    return ConvEBM(config) if config.arch == "conv" else ResNetEBM(config)
