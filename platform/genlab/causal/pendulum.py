"""The pendulum dataset (CausalVAE): a pendulum and a light cause a shadow's length and position.

Scene in world units (spec section 2.1): x in [0, 20], y in [-1, 21], pivot P = (10, 10.5),
ground line y = -0.5. Exogenous factors: pendulum index i and light index j, with angles
theta = i*pi/200 and phi = j*pi/200. Shadows are projections along the light direction,
`proj(x, y) = x + (-0.5 - y) * cot(phi)`, of the pivot P and the rod tip T = P + 9.5(sin, -cos)(theta):

    shadow_position = (proj(P) + proj(T)) / 2 = 10 + 4.75 sin(theta) + (4.75 cos(theta) - 11) cot(phi)
    shadow_length   = max(3, |proj(T) - proj(P)|) = max(3, 9.5 |cos(theta - phi)| / |sin(phi)|)

Optional label noise N(0, sd^2) is added to both shadow labels after the clip; the shadow
is then drawn where the noisy labels put it. Images come from a small numpy rasteriser
(anti-aliased disks and thick segments, one pixel of soft edge), so they are byte-identical
for the same settings and seed. Labels are floats (no integer truncation): pendulum and
light angles in degrees, shadow length and position in world units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from genlab.causal.splits import tail_split
from genlab.config import StrictModel

COLUMNS = ("pendulum", "light", "shadow_length", "shadow_position")  # labels columns, in this order
GRIDS = {"cv": (range(-40, 44), range(60, 148)), "cs": (range(-44, 44), range(60, 140))}  # (i, j) ranges
PIVOT = (10.0, 10.5)
GROUND_Y = -0.5
BALL_ARM, BALL_RADIUS, SHADOW_ARM, SUN_RADIUS, SUN_Y = 8.0, 1.5, 9.5, 3.0, 20.5
LINE_WIDTH = 0.8  # rod and shadow thickness, world units (about matplotlib's 3 pt at 96 px)
X_RANGE, Y_RANGE = (0.0, 20.0), (-1.0, 21.0)
SUN_RGB, BALL_RGB, INK_RGB = (255, 165, 0), (178, 34, 34), (0, 0, 0)


class PendulumSettings(StrictModel):
    """How the pendulum images, labels and the train/test split are made."""

    grid: Literal["cv", "cs"] = "cv"  # cv: 84 x 87 = 7,308 scenes (CausalVAE); cs: 88 x 79 = 6,952
    image_size: int = Field(96, ge=16)  # square images, pixels
    channels: Literal[1, 3] = 3  # 3 = RGB, 1 = grayscale (luminance)
    label_noise_sd: float = Field(0.0, ge=0)  # N(0, sd^2) added to shadow labels after the clip, world units
    split: Literal["ood", "interleaved"] = "ood"  # ood: hold out a tail of one factor; interleaved: CV parity 3:1
    ood_variable: Literal["pendulum", "light"] = "light"  # the factor whose tail is held out
    ood_quantile: float = Field(0.75, gt=0, lt=1)  # >= 0.5: test = above this quantile; < 0.5: below it


@dataclass(frozen=True)
class PendulumData:
    """Images uint8 [N, H, W, C] (0..255), labels float64 [N, 4] (COLUMNS), test mask bool [N]."""

    images: np.ndarray
    labels: np.ndarray
    test: np.ndarray


def grid_indices(grid: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the pendulum and light indices (int64 [N] each) in raster order, j = 100 skipped."""
    i_range, j_range = GRIDS[grid]
    pairs = [(i, j) for i in i_range for j in j_range if j != 100]
    i, j = np.array(pairs, dtype=np.int64).T
    return i, j


def shadow_labels(theta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (shadow_length, shadow_position) in world units for angles in radians (noise-free)."""
    cot = np.cos(phi) / np.sin(phi)
    position = 10.0 + 4.75 * np.sin(theta) + (4.75 * np.cos(theta) - 11.0) * cot
    length = np.maximum(3.0, 9.5 * np.abs(np.cos(theta - phi)) / np.abs(np.sin(phi)))
    return length, position


def pendulum_labels(i: np.ndarray, j: np.ndarray, noise_sd: float, seed: int) -> np.ndarray:
    """Return labels float64 [N, 4]: angles (degrees), shadow length and position (+ noise, world units)."""
    theta, phi = i * np.pi / 200.0, j * np.pi / 200.0
    length, position = shadow_labels(theta, phi)
    if noise_sd > 0:
        noise = np.random.default_rng(seed).normal(0.0, noise_sd, size=(2, len(i)))
        length, position = length + noise[0], position + noise[1]
    return np.stack([np.degrees(theta), np.degrees(phi), length, position], axis=1)


def _segment_distance(px: np.ndarray, py: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Distance (world units) from each point to the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = np.clip(((px - a[0]) * dx + (py - a[1]) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    return np.hypot(px - (a[0] + t * dx), py - (a[1] + t * dy))


def render_scene(label: np.ndarray, size: int) -> np.ndarray:
    """Return one RGB image float64 [size, size, 3] in [0, 255] for a labels row (COLUMNS units)."""
    theta, phi = np.radians(label[0]), np.radians(label[1])
    length, position = label[2], label[3]
    pixel = ((X_RANGE[1] - X_RANGE[0]) / size + (Y_RANGE[1] - Y_RANGE[0]) / size) / 2  # world units per pixel
    centres = (np.arange(size) + 0.5) / size
    px = X_RANGE[0] + centres[None, :] * (X_RANGE[1] - X_RANGE[0])
    py = Y_RANGE[1] - centres[:, None] * (Y_RANGE[1] - Y_RANGE[0])
    px, py = np.broadcast_arrays(px, py)
    direction = (np.sin(theta), -np.cos(theta))
    ball = (PIVOT[0] + BALL_ARM * direction[0], PIVOT[1] + BALL_ARM * direction[1])
    sun = (10.0 + 10.0 * np.cos(phi) / np.sin(phi), SUN_Y)
    shapes = [  # (signed distance to the shape's edge, negative inside; colour), back to front
        (np.hypot(px - sun[0], py - sun[1]) - SUN_RADIUS, SUN_RGB),
        (_segment_distance(px, py, PIVOT, ball) - LINE_WIDTH / 2, INK_RGB),
        (np.hypot(px - ball[0], py - ball[1]) - BALL_RADIUS, BALL_RGB),
        (_segment_distance(px, py, (position - length / 2, GROUND_Y), (position + length / 2, GROUND_Y))
         - LINE_WIDTH / 2, INK_RGB),
    ]
    canvas = np.full((size, size, 3), 255.0)
    for distance, colour in shapes:
        coverage = np.clip(0.5 - distance / pixel, 0.0, 1.0)[..., None]
        canvas = canvas * (1.0 - coverage) + np.asarray(colour, dtype=np.float64) * coverage
    return canvas


def render_images(labels: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Return uint8 images [N, size, size, channels] (0..255) for labels rows (COLUMNS units)."""
    images = np.stack([render_scene(row, size) for row in labels]) if len(labels) else np.zeros((0, size, size, 3))
    if channels == 1:
        images = (images @ np.array([0.299, 0.587, 0.114]))[..., None]
    return np.rint(images).astype(np.uint8)


def pendulum_split(labels: np.ndarray, settings: PendulumSettings) -> np.ndarray:
    """Return the test mask bool [N]: a tail of one factor (ood), or CV's every 4th after the first 4."""
    if settings.split == "interleaved":
        index = np.arange(len(labels))
        return (index > 0) & (index % 4 == 0)
    return tail_split(labels[:, COLUMNS.index(settings.ood_variable)], settings.ood_quantile)


def make_pendulum(settings: PendulumSettings, seed: int, *, rows: np.ndarray | None = None) -> PendulumData:
    """Return the pendulum dataset (all grid scenes, or only `rows` of the raster order) for `seed`.

    The split is computed on the whole grid, so a subset keeps each scene's train/test side.
    """
    i, j = grid_indices(settings.grid)
    labels = pendulum_labels(i, j, settings.label_noise_sd, seed)
    test = pendulum_split(labels, settings)
    if rows is not None:
        labels, test = labels[rows], test[rows]
    return PendulumData(images=render_images(labels, settings.image_size, settings.channels), labels=labels, test=test)


def pendulum_table(settings: PendulumSettings, num_samples: int, seed: int) -> np.ndarray:
    """Return `num_samples` labels rows float64 [num_samples, 4] drawn without replacement from the grid."""
    i, j = grid_indices(settings.grid)
    labels = pendulum_labels(i, j, settings.label_noise_sd, seed)
    rows = np.random.default_rng([seed, 1]).choice(len(labels), size=min(num_samples, len(labels)), replace=False)
    return labels[np.sort(rows)]
