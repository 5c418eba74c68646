"""CCGM on pendulum images: intervention grids and counterfactual fidelity against the renderer (spec 6.6).

The renderer is the ground truth: for do(node = c) on a test scene, the true image is the
scene re-rendered with the node set to c and its descendants recomputed from the equations
(spec 2.1, noise-free); a shadow node set directly keeps the angles. Counterfactual
fidelity is the pixel MSE between CCGM's counterfactual and that image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genlab.causal.ccgm.model import CCGM
from genlab.causal.ccgm.sampling import counterfactual
from genlab.causal.pendulum import COLUMNS, render_images, shadow_labels
from genlab.data.convert import UNIT, to_pixels, to_tensor
from genlab.visualize import save_image_grid


def intervened_labels(labels: np.ndarray, node: str, value: float) -> np.ndarray:
    """Return labels [N, 4] (COLUMNS units) under do(node = value): shadows recomputed when an angle is set."""
    out = labels.copy()
    out[:, COLUMNS.index(node)] = value
    if node in ("pendulum", "light"):
        out[:, 2], out[:, 3] = shadow_labels(np.radians(out[:, 0]), np.radians(out[:, 1]))
    return out


def sweep_values(labels: np.ndarray, columns: int) -> dict[str, np.ndarray]:
    """Return {node: `columns` values evenly spaced between its 5% and 95% label quantiles}."""
    return {node: np.linspace(*np.quantile(labels[:, k], [0.05, 0.95]), columns) for k, node in enumerate(COLUMNS)}


def save_intervention_grid(model: CCGM, image: torch.Tensor, values: dict[str, np.ndarray], path: Path) -> Path:
    """Save a PNG grid: one row per intervened node, its values swept, counterfactuals of one image [1, 1, H, W]."""
    rows, titles = [], []
    for node, sweep in values.items():
        decoded = [counterfactual(model, image, {node: float(v)})[1] for v in sweep]
        rows.append(to_pixels(torch.cat(decoded), UNIT))
        titles.append(f"do({node})\n{sweep[0]:.1f}..{sweep[-1]:.1f}")
    return save_image_grid(rows, titles, path)


def counterfactual_pixel_mse(model: CCGM, images: torch.Tensor, labels: np.ndarray, values: dict[str, np.ndarray],
                             image_size: int) -> dict[str, float]:
    """Return the mean pixel MSE ([0, 1]^2 units) of counterfactuals vs the re-rendered true counterfactual.

    Keys per swept node: `counterfactual_pixel_mse_<node>` (the model's do() counterfactual) and
    `counterfactual_pixel_mse_unchanged_<node>` (the model's plain reconstruction against the same
    truth: what a model whose interventions do nothing scores); `counterfactual_pixel_mse` and
    `counterfactual_pixel_mse_unchanged` are their means over nodes.
    """
    reconstruction = counterfactual(model, images, {})[1]
    errors: dict[str, float] = {}
    for node, sweep in values.items():
        cells, unchanged = [], []
        for value in sweep:
            truth = to_tensor(render_images(intervened_labels(labels, node, float(value)), image_size, 1), UNIT)
            cells.append(float(((counterfactual(model, images, {node: float(value)})[1] - truth) ** 2).mean()))
            unchanged.append(float(((reconstruction - truth) ** 2).mean()))
        errors[f"counterfactual_pixel_mse_{node}"] = float(np.mean(cells))
        errors[f"counterfactual_pixel_mse_unchanged_{node}"] = float(np.mean(unchanged))
    for key in ("counterfactual_pixel_mse", "counterfactual_pixel_mse_unchanged"):
        errors[key] = float(np.mean([errors[f"{key}_{node}"] for node in values]))
    return errors
