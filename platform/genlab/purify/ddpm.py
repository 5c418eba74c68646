"""PureGen-DDPM purifier: Psi_t*(x) = forward jump to noise level t*, then t* reverse DDPM steps (spec puregen.md §3.3).

Images (uint8 NHWC) map to [-1, 1] (`genlab.data.convert`); `genlab.samplers.ddpm.DdpmSampler`
runs every requested t* for a batch in one staggered loop and the results are clamped and
rounded back to uint8. Noise is keyed by (seed, row_id), so a row gets the same transform in any
batch, actor or device (up to float rounding of batched convolutions).

The UNet comes from a checkpoint directory (`checkpoint`, written by `jobs/train_ddpm.py`) or the
MLflow model registry (`registered_model` + `model_version`), one of the two
(`genlab.purify.model_source`); it is loaded once per purifier.

Speed: `precision`, `channels_last`, `compile` and `batch_size` change how the same loop runs,
not what it computes; each defaults to `auto`, the device's fast path (`genlab.purify.network`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from genlab.checkpoints import load_frozen_model
from genlab.data.convert import to_pixels, to_tensor
from genlab.models.ddpm import CHECKPOINT_KIND, DdpmNetConfig, DdpmUNet, build_unet
from genlab.purify.network import NetworkPurifier, NetworkSettings
from genlab.samplers.ddpm import MAX_START_STEP, DdpmSampler


class DdpmSettings(NetworkSettings, kind=CHECKPOINT_KIND, snapshot_field="diffusion_start_steps", label_prefix="ddpm-t",
                   cuda_batch_size=2048, cpu_batch_pixels=131072):
    """PureGen-DDPM; `diffusion_start_steps` are the t* values, all produced by one call (one output each)."""

    name: Literal["ddpm"] = "ddpm"
    diffusion_start_steps: list[int] = Field(default_factory=lambda: [75])  # t* values, 1..999; paper: 75 (scratch), 125 (transfer)

    @field_validator("diffusion_start_steps")
    @classmethod
    def _valid_steps(cls, steps: list[int]) -> list[int]:
        if not steps or min(steps) < 1 or max(steps) > MAX_START_STEP:
            raise ValueError(f"diffusion_start_steps must be a non-empty list of t* values in 1..{MAX_START_STEP}")
        return sorted(set(steps))


def load_ddpm(path: str | Path, device: str | torch.device = "cpu") -> DdpmUNet:
    """Return the UNet saved at checkpoint directory `path`, in eval mode on `device`, with frozen weights."""
    return load_frozen_model(path, kind=CHECKPOINT_KIND, config_cls=DdpmNetConfig, build=build_unet, device=device)


class DdpmPurifier(NetworkPurifier):
    """Psi_t* for every t* in `settings.diffusion_start_steps`, from one staggered reverse loop per batch."""

    def __init__(self, settings: DdpmSettings, seed: int) -> None:
        super().__init__(settings, seed, load_ddpm)
        self.sampler = DdpmSampler(self.model, **settings.sampler_options(self.device))

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        """Return `{t*: uint8 [N,H,W,C]}` for uint8 NHWC `images`; rows keyed by `row_ids` for the noise."""
        out = {t: np.empty_like(images) for t in self.settings.diffusion_start_steps}
        size = self.speed_path(images.shape).batch_size  # each t* adds a copy of the batch in the reverse loop
        for start in range(0, len(images), size):
            rows = slice(start, start + size)
            purified = self.purify_tensor(to_tensor(images[rows], device=self.device), row_ids[rows])
            for t, x in purified.items():
                out[t][rows] = to_pixels(x)
        return out

    def purify_tensor(self, x: torch.Tensor | dict[int, torch.Tensor], row_ids: np.ndarray, *,
                      seed: int | None = None) -> dict[int, torch.Tensor]:
        """Return {t*: Psi_t*(x)} for float NCHW images in [-1, 1] (or {t*: images}), one chain per row and t*.

        The tensor-level step the PureGen combinations chain with Langevin; `seed` defaults to
        the purifier's. Outputs stay float (not quantised).
        """
        return self.sampler.purify(x, self.settings.diffusion_start_steps,
                                   seed=self.seed if seed is None else seed, row_ids=row_ids)
