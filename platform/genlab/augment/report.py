"""What a LAVAE run shows: image grids, the transfer-matrix heatmap, and the summary as MLflow metrics."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genlab.data.convert import UNIT, to_pixels  # noqa: E402
from genlab.visualize import save_image_grid  # noqa: E402


def save_rows(rows: dict[str, torch.Tensor], path: Path) -> Path:
    """Save one grid row per entry (title -> float [N,1,H,W] images in [0,1]) as a PNG; return the path."""
    return save_image_grid([to_pixels(images, UNIT) for images in rows.values()], list(rows), path)


def save_transfer_heatmap(matrix: list[list[float]], rows: list[str], columns: list[str], path: Path) -> Path:
    """Save the transfer matrix (total BCE, nats/image; rows trained on, columns evaluated) as a PNG heatmap."""
    fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 3.5, 0.7 * len(rows) + 2.2))
    image = ax.imshow(matrix, cmap="viridis_r")
    middle = (min(map(min, matrix)) + max(map(max, matrix))) / 2
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("evaluated on (transfer head)")
    ax.set_ylabel("latent maps trained on")
    for r, values in enumerate(matrix):
        for c, value in enumerate(values):
            ax.text(c, r, f"{value:.0f}", ha="center", va="center", color="white" if value > middle else "black",
                    fontsize=8)
    fig.colorbar(image, ax=ax, label="total BCE (nats/image)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


