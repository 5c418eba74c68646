"""Image classifiers: a small CNN (the embedded default), ResNet-18 with a CIFAR stem, and the small residual
net of the fast (HLB-like) training protocol; the wrapper that bakes a training set's normalisation into a
network (and its linear-probe variant), and where a network's feature stages and linear head are."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ClassifierArch = Literal["small_cnn", "resnet18", "hlb_resnet"]


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


class ConvGroup(nn.Module):
    """hlb-CIFAR10's block: conv, 2x2 max-pool, BN, GELU, then a residual conv-BN-GELU at the pooled size."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2),
                                  nn.BatchNorm2d(c_out), nn.GELU())
        self.residual = nn.Sequential(nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                                      nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output [N, c_out, H/2, W/2]."""
        x = self.down(x)
        return x + self.residual(x)


class HlbResNet(nn.Module):
    """The fast protocol's net, after hlb-CIFAR10's HLB_S: a 3x3 stem and three ConvGroups (width, 4*width,
    8*width; 64/256/512 at width 64), global max-pool, linear head."""

    def __init__(self, *, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.GELU(), ConvGroup(width, 4 * width), ConvGroup(4 * width, 8 * width),
                                      ConvGroup(8 * width, 8 * width))
        self.head = nn.Linear(8 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits [N, num_classes] for normalised images [N, C, H, W] (H, W >= 8)."""
        return self.head(self.features(x).amax(dim=(2, 3)))


def resnet18_cifar(*, in_channels: int, num_classes: int) -> nn.Module:
    """Return torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def build_classifier(arch: ClassifierArch, *, in_channels: int, num_classes: int, width: int = 32) -> nn.Module:
    """Return an untrained classifier of the named architecture; ValueError for an unknown name."""
    if arch == "small_cnn":
        return SmallCNN(in_channels=in_channels, num_classes=num_classes, width=width)
    if arch == "hlb_resnet":
        return HlbResNet(in_channels=in_channels, num_classes=num_classes, width=width)
    if arch == "resnet18":
        return resnet18_cifar(in_channels=in_channels, num_classes=num_classes)
    raise ValueError(f"unknown classifier arch {arch!r} (small_cnn, resnet18 or hlb_resnet)")


def head_name(net: nn.Module) -> str:
    """Return the attribute name of a classifier network's final linear layer (`head` or `fc`)."""
    for name in ("head", "fc"):
        if isinstance(getattr(net, name, None), nn.Linear):
            return name
    raise ValueError(f"{type(net).__name__} has no linear head named 'head' or 'fc'")


def feature_stages(net: nn.Module) -> list[nn.Module]:
    """Return the modules whose outputs are the network's successive feature blocks (shallow to deep)."""
    if all(hasattr(net, f"layer{i}") for i in range(1, 5)):
        return [getattr(net, f"layer{i}") for i in range(1, 5)]
    return [m for m in net.features if isinstance(m, (nn.ReLU, ConvGroup))]


class NormalizedClassifier(nn.Module):
    """A network with the training set's per-channel mean/std baked in: takes uint8-range floats."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return logits for float images [N, C, H, W] in [0, 255]."""
        return self.net((images / 255.0 - self.mean) / self.std)


class LinearProbeClassifier(NormalizedClassifier):
    """A NormalizedClassifier whose feature extractor stays in eval mode (frozen BN); only the head trains."""

    def train(self, mode: bool = True) -> "LinearProbeClassifier":
        """Set train mode on the head only; the rest stays in eval mode. Returns self."""
        super().train(mode)
        self.net.eval()
        getattr(self.net, head_name(self.net)).train(mode)
        return self
