"""CCGM on pendulum images: intervention grids and counterfactual fidelity against the renderer (spec 6.6).

The renderer is the ground truth: for do(node = c) on a test scene, the true image is the
scene re-rendered with the node set to c and its descendants recomputed from the equations
(spec 2.1, noise-free); a shadow node set directly keeps the angles. Counterfactual
fidelity is the pixel MSE between CCGM's counterfactual and that image, beside the model's
unchanged reconstruction, and the alignment of the change the model makes with the true change.
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


def counterfactual_image_scores(model: CCGM, images: torch.Tensor, labels: np.ndarray,
                                values: dict[str, np.ndarray], image_size: int) -> dict[str, float]:
    """Return how CCGM's do() counterfactuals of `images` compare with the re-rendered true counterfactuals.

    Keys per swept node, each averaged over the node's `values`:
    - `counterfactual_pixel_mse_<node>`: pixel MSE of the counterfactual vs the truth ([0, 1]^2 units);
    - `counterfactual_pixel_mse_unchanged_<node>`: the same for the model's plain reconstruction (what a
      model whose interventions do nothing scores);
    - `counterfactual_alignment_<node>`: cosine, over all pixels, between the change the model makes
      (counterfactual - reconstruction) and the true change (true counterfactual - true factual image),
      in [-1, 1]: 0 for interventions that do nothing or change the wrong pixels, 1 for the true change.
    The keys without a node are the means over nodes.
    """
    reconstruction = counterfactual(model, images, {})[1]
    factual = to_tensor(render_images(labels, image_size, 1), UNIT)
    scores: dict[str, list[float]] = {}
    for node, sweep in values.items():
        for value in sweep:
            truth = to_tensor(render_images(intervened_labels(labels, node, float(value)), image_size, 1), UNIT)
            changed = counterfactual(model, images, {node: float(value)})[1]
            cell = {"counterfactual_pixel_mse": float(((changed - truth) ** 2).mean()),
                    "counterfactual_pixel_mse_unchanged": float(((reconstruction - truth) ** 2).mean()),
                    "counterfactual_alignment": float(torch.nn.functional.cosine_similarity(
                        (changed - reconstruction).flatten(), (truth - factual).flatten(), dim=0, eps=1e-12))}
            for key, score in cell.items():
                scores.setdefault(f"{key}_{node}", []).append(score)
    out = {key: float(np.mean(cells)) for key, cells in scores.items()}
    for key in ("counterfactual_pixel_mse", "counterfactual_pixel_mse_unchanged", "counterfactual_alignment"):
        out[key] = float(np.mean([out[f"{key}_{node}"] for node in values]))
    return out
