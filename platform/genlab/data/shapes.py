"""Generated `shapes` dataset: 10 classes of coloured shapes on noisy backgrounds, seeded."""

from __future__ import annotations

import numpy as np

SHAPE_CLASSES = ["disc", "square", "triangle", "cross", "hbar", "vbar", "ring", "diamond", "x", "frame"]


def _mask(kind: str, yy: np.ndarray, xx: np.ndarray, radius: float) -> np.ndarray:
    ay, ax = np.abs(yy), np.abs(xx)
    width = radius * 0.35
    masks = {
        "disc": yy**2 + xx**2 <= radius**2,
        "square": (ay <= radius * 0.8) & (ax <= radius * 0.8),
        "triangle": (yy <= radius * 0.8) & (yy >= -radius * 0.8) & (ax <= (yy + radius * 0.8) * 0.6),
        "cross": ((ay <= width) & (ax <= radius)) | ((ax <= width) & (ay <= radius)),
        "hbar": (ay <= width) & (ax <= radius),
        "vbar": (ax <= width) & (ay <= radius),
        "ring": (yy**2 + xx**2 <= radius**2) & (yy**2 + xx**2 >= (radius * 0.55) ** 2),
        "diamond": ay + ax <= radius,
        "x": ((np.abs(yy - xx) <= width) | (np.abs(yy + xx) <= width)) & (ay <= radius * 0.8) & (ax <= radius * 0.8),
        "frame": (ay <= radius * 0.85) & (ax <= radius * 0.85) & ((ay >= radius * 0.5) | (ax >= radius * 0.5)),
    }
    return masks[kind]


def generate_shapes(samples_per_class: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (images uint8 [N,size,size,3], labels int64 [N], class names), deterministic by seed."""
    rng = np.random.default_rng(seed)
    coords = np.arange(size, dtype=np.float32)
    images, labels = [], []
    for label, kind in enumerate(SHAPE_CLASSES):
        for _ in range(samples_per_class):
            radius = rng.uniform(0.22, 0.38) * size
            cy, cx = rng.uniform(radius, size - radius, size=2)
            yy, xx = coords[:, None] - cy, coords[None, :] - cx
            background = rng.uniform(0, 90, size=3)
            colour = rng.uniform(140, 255, size=3)
            image = background + rng.normal(0, 12, size=(size, size, 3))
            image[_mask(kind, yy, xx, radius)] = colour
            images.append(np.clip(image, 0, 255).round().astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64), list(SHAPE_CLASSES)
