"""Image classifiers: a small CNN (the embedded default) and ResNet-18 with a CIFAR stem."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ClassifierArch = Literal["small_cnn", "resnet18"]


class SmallCNN(nn.Module):
    """Three conv blocks (width, 2*width, 4*width) with BN + ReLU, global average pool, linear head."""

    def __init__(self, *, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()

        def block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        self.features = nn.Sequential(*block(in_channels, width, False), *block(width, 2 * width, True),
                                      *block(2 * width, 4 * width, True))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits [N, num_classes] for normalised images [N, C, H, W]."""
        return self.head(self.features(x).mean(dim=(2, 3)))


def resnet18_cifar(*, in_channels: int, num_classes: int) -> nn.Module:
    """Return torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def build_classifier(arch: ClassifierArch, *, in_channels: int, num_classes: int, width: int = 32) -> nn.Module:
    """Return an untrained classifier of the named architecture."""
    if arch == "small_cnn":
        return SmallCNN(in_channels=in_channels, num_classes=num_classes, width=width)
    return resnet18_cifar(in_channels=in_channels, num_classes=num_classes)
