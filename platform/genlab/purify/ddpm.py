"""PureGen-DDPM purifier: Psi_t*(x) = forward jump to noise level t*, then t* reverse DDPM steps (spec puregen.md §3.3).

Images (uint8 NHWC) map to [-1, 1] (`genlab.data.convert`); `genlab.samplers.ddpm.DdpmSampler`
runs every requested t* for a batch in one staggered loop and the results are clamped and
rounded back to uint8. Noise is keyed by (seed, row_id), so a row gets the same transform in any
batch, actor or device (up to float rounding of batched convolutions).

The UNet comes from a checkpoint directory (`checkpoint`, written by `jobs/train_ddpm.py`) or the
MLflow model registry (`registered_model` + `model_version`); it is loaded once per purifier.

Speed: `precision`, `channels_last`, `compile` and `batch_size` change how the same loop runs,
not what it computes (`genlab.samplers.speed`). `SPEED_LOOPS` names the two ways
`genlab.purify.speed` compares: the official code's loop (fp32, eager, batch 128) and the fast
one (bf16 autocast with TF32 for the rest, channels-last, compiled, batch 2048).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from genlab.checkpoints import load_frozen_model, read_checkpoint_index
from genlab.tracking import resolve_registered_checkpoint
from genlab.data.convert import to_pixels, to_tensor
from genlab.errors import CheckpointError
from genlab.models.ddpm import CHECKPOINT_KIND, DdpmNetConfig, DdpmUNet, build_unet
from genlab.purify.base import Purifier, PurifierSettings
from genlab.samplers.ddpm import MAX_START_STEP, DdpmSampler
from genlab.samplers.langevin import resolve_device
from genlab.samplers.speed import resolve_precision

TRAIN_HINT = "train one with `python jobs/train_ddpm.py` (conf/train_ddpm.yaml), which registers genlab-ddpm-<dataset>"


class DdpmSettings(PurifierSettings):
    """PureGen-DDPM; `diffusion_start_steps` are the t* values, all produced by one call (one output each)."""

    SPEED_LOOPS: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": {"precision": "fp32", "channels_last": False, "compile": False, "batch_size": 128},
        "optimized": {"precision": "bf16", "channels_last": True, "compile": True, "batch_size": 2048},
    }
    name: Literal["ddpm"] = "ddpm"
    diffusion_start_steps: list[int] = Field(default_factory=lambda: [75])  # t* values, 1..999; paper: 75 (scratch), 125 (transfer)
    checkpoint: str | None = None  # DDPM checkpoint directory (from jobs/train_ddpm.py); or use registered_model
    registered_model: str | None = None  # MLflow registry name, e.g. genlab-ddpm-digits
    model_version: str | None = None  # registry version number or alias; None = latest version
    batch_size: int = Field(128, ge=1)  # images per reverse-chain batch (each t* adds a copy of the batch)
    device: str = "auto"  # auto (cuda when present), cpu or cuda
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "auto"  # UNet arithmetic: auto = bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool = False  # feed the UNet channels-last tensors (faster convolutions on CUDA)
    compile: bool = False  # torch.compile the UNet (pays a compile per new batch shape; worth it for big runs)

    @field_validator("diffusion_start_steps")
    @classmethod
    def _valid_steps(cls, steps: list[int]) -> list[int]:
        if not steps or min(steps) < 1 or max(steps) > MAX_START_STEP:
            raise ValueError(f"diffusion_start_steps must be a non-empty list of t* values in 1..{MAX_START_STEP}")
        return sorted(set(steps))

    @model_validator(mode="after")
    def _one_model_source(self) -> "DdpmSettings":
        if self.checkpoint is not None and self.registered_model is not None:
            raise ValueError("set either checkpoint or registered_model, not both")
        return self

    def snapshot_steps(self) -> list[int]:
        return list(self.diffusion_start_steps)

    def label(self, steps: int = 0) -> str:
        return f"ddpm-t{steps}" if steps else f"ddpm-t{','.join(map(str, self.diffusion_start_steps))}"

    def snapshot_path(self) -> str | None:
        return "diffusion_start_steps"

    def weights_fingerprint(self) -> str | None:
        return model_fingerprint(self)


def load_ddpm(path: str | Path, device: str | torch.device = "cpu") -> DdpmUNet:
    """Return the UNet saved at checkpoint directory `path`, in eval mode on `device`, with frozen weights."""
    return load_frozen_model(path, kind=CHECKPOINT_KIND, config_cls=DdpmNetConfig, build=build_unet, device=device)


def model_source(settings: DdpmSettings) -> Path:
    """Return the checkpoint directory the settings name; raise `CheckpointError` with the train command if none."""
    if settings.checkpoint is not None:
        return Path(settings.checkpoint)
    if settings.registered_model is not None:
        path = resolve_registered_checkpoint(settings.registered_model, settings.model_version)
        read_checkpoint_index(path, kind=CHECKPOINT_KIND)
        return path
    raise CheckpointError(f"purifier ddpm needs checkpoint=... or registered_model=...; {TRAIN_HINT}")


def model_fingerprint(settings: DdpmSettings) -> str:
    """Return the sha256 of the UNet weights the settings name (for cache keys: a retrained checkpoint changes it)."""
    return read_checkpoint_index(model_source(settings), kind=CHECKPOINT_KIND)["files"]["model"]


class DdpmPurifier(Purifier):
    """Psi_t* for every t* in `settings.diffusion_start_steps`, from one staggered reverse loop per batch."""

    def __init__(self, settings: DdpmSettings, seed: int) -> None:
        self.settings, self.seed = settings, seed
        self.device = resolve_device(settings.device)
        self.model = load_ddpm(model_source(settings), self.device)
        self.sampler = DdpmSampler(self.model, precision=resolve_precision(settings.precision, self.device),
                                   channels_last=settings.channels_last, compile=settings.compile)

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        """Return `{t*: uint8 [N,H,W,C]}` for uint8 NHWC `images`; rows keyed by `row_ids` for the noise."""
        out = {t: np.empty_like(images) for t in self.settings.diffusion_start_steps}
        for start in range(0, len(images), self.settings.batch_size):
            rows = slice(start, start + self.settings.batch_size)
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
