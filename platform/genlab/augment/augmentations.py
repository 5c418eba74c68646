"""Image augmentations of the LAVAE spec (§3.2), without imgaug, seeded.

Every augmentation maps float images `[N, 1, H, W]` in [0, 1] to images of the same shape
and range. Random parameters are drawn per image from the `torch.Generator` passed in, so
the same generator state gives the same images. `involutive` marks the augmentations that
are their own inverse (a(a(x)) = x); only those get the involution loss in stage 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F

AugmentationName = Literal["flip_lr", "flip_ud", "rotate_cw", "rotate_ccw", "rotate180", "gaussian_blur",
                           "edge_detect", "shear_x", "canny", "mini_image", "tl_sap_noise", "sap_noise"]

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
IDENTITY_3X3 = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """Return `n` draws from U(low, high) as float32 [n]."""
    return low + (high - low) * torch.rand(n, generator=generator)


def _conv_per_image(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve image i with kernel i (`kernels` [N, k, k], odd k), reflect padding."""
    n, _, h, w = images.shape
    pad = kernels.shape[-1] // 2
    padded = F.pad(images.reshape(1, n, h, w), (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(padded, kernels.unsqueeze(1).to(images), groups=n).reshape(n, 1, h, w)


def flip_lr(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return the images mirrored left-right."""
    return images.flip(3)


def flip_ud(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return the images mirrored up-down."""
    return images.flip(2)


def rotate_cw(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return the images rotated 90 degrees clockwise."""
    return torch.rot90(images, k=-1, dims=(2, 3))


def rotate_ccw(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return the images rotated 90 degrees counter-clockwise."""
    return torch.rot90(images, k=1, dims=(2, 3))


def rotate180(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return the images rotated 180 degrees (= flip_lr then flip_ud)."""
    return torch.rot90(images, k=2, dims=(2, 3))


def gaussian_blur(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return the images blurred by a 7x7 Gaussian, sigma ~ U(0.1, 2.0) pixels per image."""
    sigma = _uniform(len(images), 0.1, 2.0, generator)
    offsets = torch.arange(7, dtype=torch.float32) - 3
    line = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None] ** 2))
    line = line / line.sum(1, keepdim=True)
    return _conv_per_image(images, line[:, :, None] * line[:, None, :])


def edge_detect(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return images convolved with (1-alpha)*identity + alpha*Laplacian, alpha ~ U(0, 1), clipped to [0, 1].

    imgaug's EdgeDetect: the Laplacian edge map alpha-blended with the image.
    """
    alpha = _uniform(len(images), 0.0, 1.0, generator)[:, None, None]
    kernels = (1 - alpha) * IDENTITY_3X3 + alpha * LAPLACIAN
    return _conv_per_image(images, kernels).clamp(0, 1)


def shear_x(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return images sheared along x by an angle ~ U(-50, -45) degrees per image (about the centre).

    Same map as torchvision's `affine(shear=(angle, 0))`, done for the whole batch in one
    `grid_sample` (bilinear, zeros outside).
    """
    n = len(images)
    shear = torch.tan(torch.deg2rad(_uniform(n, -50.0, -45.0, generator)))
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 1] = 1.0, shear, 1.0
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def canny(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return inverted binary edge maps: 0 where the Sobel gradient magnitude exceeds 0.5, else 1.

    Stands in for imgaug's Canny(alpha=1) with black edges on white; the Sobel response is
    divided by 4 so that a full 0-to-1 step has magnitude 1.
    """
    sobel = torch.stack([SOBEL_X, SOBEL_X.T]).unsqueeze(1).to(images) / 4
    gradient = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), sobel)
    magnitude = gradient.pow(2).sum(1, keepdim=True).sqrt()
    return (magnitude <= 0.5).to(images.dtype)


def mini_image(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return the images with a thumbnail of themselves pasted top-left (8x8 at 28px, scaled with size)."""
    side = max(2, round(images.shape[-1] * 8 / 28))
    thumbnail = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    out = images.clone()
    out[:, :, :side, :side] = thumbnail.clamp(0, 1)
    return out


def _salt_and_pepper(images: torch.Tensor, region: torch.Tensor, fraction: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Set a `fraction` of the pixels inside the boolean `region` [H, W] to 0 or 1 (equally likely)."""
    hit = (torch.rand(images.shape, generator=generator) < fraction).to(images.device) & region
    salt = (torch.rand(images.shape, generator=generator) < 0.5).to(images)
    return torch.where(hit, salt, images)


def tl_sap_noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return images with salt-and-pepper noise on half the pixels of the top-left (H/4 x W/4) block."""
    h, w = images.shape[-2:]
    region = torch.zeros(h, w, dtype=torch.bool, device=images.device)
    region[: max(1, h // 4), : max(1, w // 4)] = True
    return _salt_and_pepper(images, region, 0.5, generator)


def sap_noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return images with salt-and-pepper noise on 20% of all pixels."""
    region = torch.ones(images.shape[-2:], dtype=torch.bool, device=images.device)
    return _salt_and_pepper(images, region, 0.2, generator)


@dataclass(frozen=True)
class Augmentation:
    """One named augmentation: `apply(images, generator)` and whether it is its own inverse."""

    name: str
    apply: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    involutive: bool


AUGMENTATIONS: dict[str, Augmentation] = {
    fn.__name__: Augmentation(fn.__name__, fn, involutive=fn in (flip_lr, flip_ud, rotate180))
    for fn in (flip_lr, flip_ud, rotate_cw, rotate_ccw, rotate180, gaussian_blur, edge_detect, shear_x, canny,
               mini_image, tl_sap_noise, sap_noise)
}


def augment(images: torch.Tensor, name: str, generator: torch.Generator) -> torch.Tensor:
    """Return `images` ([N,1,H,W] in [0,1]) with augmentation `name` applied (same shape, [0,1])."""
    return AUGMENTATIONS[name].apply(images, generator)


def is_involutive(name: str) -> bool:
    """Return True when augmentation `name` is its own inverse (flips, rotate180)."""
    return AUGMENTATIONS[name].involutive
