"""PureGen-EBM purifier: Psi_T(x) = T Langevin steps on a trained EBM, started at the image.

Images (uint8 NHWC) map to x = pixels / 127.5 - 1 in [-1, 1]; one chain per image runs the
update of `genlab.samplers.langevin` with the spec's step size (1.25e-2) and temperature (1e-4)
and yields snapshots at every requested T. Each snapshot is mapped back to pixels and, as an
intentional deviation from the official code (which casts out-of-range values to uint8
unchecked, spec puregen.md §2), clamped to [0, 255] and rounded. Noise is keyed by
(seed, row_id), so a row gets the same transform in any batch, actor or device.

The EBM comes from a checkpoint directory (`checkpoint`) or the MLflow model registry
(`registered_model` + `model_version`); it is loaded once per purifier (one copy per Ray actor).

Speed: `precision`, `channels_last`, `compile` and `batch_size` change how the same chain runs,
not what it computes (`genlab.samplers.speed`). `SPEED_LOOPS` names the two ways
`genlab.purify.speed` compares: the official code's loop (fp32, eager, batch 128, one autograd
call per step) and the fast one (bf16 autocast with TF32 for the rest, channels-last, compiled,
batch 4096).
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
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.base import Purifier, PurifierSettings
from genlab.samplers.langevin import LangevinSampler, resolve_device
from genlab.samplers.speed import resolve_precision

EBM_KIND = "ebm"
TRAIN_HINT = "train one with `python jobs/train_ebm.py` (conf/train_ebm.yaml), which registers genlab-ebm-<dataset>"


class EbmSettings(PurifierSettings):
    """PureGen-EBM: Langevin purification with a trained EBM; `langevin_steps` are the snapshot T values of one chain."""

    SPEED_LOOPS: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": {"precision": "fp32", "channels_last": False, "compile": False, "batch_size": 128},
        "optimized": {"precision": "bf16", "channels_last": True, "compile": True, "batch_size": 4096},
    }
    name: Literal["ebm"] = "ebm"
    langevin_steps: list[int] = Field(default_factory=lambda: [150])  # T values (snapshots of one chain); paper: 150
    step_size: float = Field(1.25e-2, gt=0)  # Langevin eps, [-1,1] units (per-step noise std)
    temperature: float = Field(1e-4, gt=0)  # Langevin tau (energy is divided by it)
    checkpoint: str | None = None  # EBM checkpoint directory (from jobs/train_ebm.py); or use registered_model
    registered_model: str | None = None  # MLflow registry name, e.g. genlab-ebm-digits
    model_version: int | str | None = None  # registry version number or alias; None = latest version
    batch_size: int = Field(256, ge=1)  # images per chain batch on the device
    device: str = "auto"  # auto (cuda when present), cpu or cuda
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "auto"  # energy-net arithmetic: auto = bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool = False  # feed the energy net channels-last tensors (faster convolutions on CUDA)
    compile: bool = False  # torch.compile the energy net and the noise (pays a compile per new batch shape)

    @field_validator("langevin_steps")
    @classmethod
    def _positive_steps(cls, steps: list[int]) -> list[int]:
        if not steps or min(steps) < 1:
            raise ValueError("langevin_steps must be a non-empty list of step counts >= 1")
        return sorted(set(steps))

    @model_validator(mode="after")
    def _one_model_source(self) -> "EbmSettings":
        if self.checkpoint is not None and self.registered_model is not None:
            raise ValueError("set either checkpoint or registered_model, not both")
        return self

    def snapshot_steps(self) -> list[int]:
        return list(self.langevin_steps)

    def label(self, steps: int = 0) -> str:
        return f"ebm-T{steps}" if steps else f"ebm-T{','.join(map(str, self.langevin_steps))}"

    def weights_fingerprint(self) -> str | None:
        return model_fingerprint(self)

    def snapshot_path(self) -> str | None:
        return "langevin_steps"


def resolve_ebm_checkpoint(name: str, version_or_alias: str | int | None = None) -> Path:
    """Return the local directory of a registered EBM (download cached under `.genlab/models`).

    `version_or_alias`: a version number, an alias, or None / `latest` for the newest version.
    Raises `CheckpointError` if it is absent or not an EBM checkpoint.
    """
    path = resolve_registered_checkpoint(name, version_or_alias)
    read_checkpoint_index(path, kind=EBM_KIND)
    return path


def load_ebm(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Return the EBM saved at checkpoint directory `path`, in eval mode on `device`, with frozen weights."""
    return load_frozen_model(path, kind=EBM_KIND, config_cls=EbmNetConfig, build=build_ebm, device=device)


def model_source(settings: EbmSettings) -> Path:
    """Return the checkpoint directory the settings name; raise `CheckpointError` with the train command if none."""
    if settings.checkpoint is not None:
        return Path(settings.checkpoint)
    if settings.registered_model is not None:
        return resolve_ebm_checkpoint(settings.registered_model, settings.model_version)
    raise CheckpointError(f"purifier ebm needs checkpoint=... or registered_model=...; {TRAIN_HINT}")


def model_fingerprint(settings: EbmSettings) -> str:
    """Return the sha256 of the EBM weights the settings name (for cache keys: a retrained checkpoint changes it)."""
    return read_checkpoint_index(model_source(settings), kind=EBM_KIND)["files"]["model"]


class EbmPurifier(Purifier):
    """Psi_T for every T in `settings.langevin_steps`, from one Langevin chain per image."""

    def __init__(self, settings: EbmSettings, seed: int) -> None:
        self.settings, self.seed = settings, seed
        self.device = resolve_device(settings.device)
        self.model = load_ebm(model_source(settings), self.device)
        self.sampler = LangevinSampler(self.model, step_size=settings.step_size, temperature=settings.temperature,
                                       precision=resolve_precision(settings.precision, self.device),
                                       channels_last=settings.channels_last, compile=settings.compile)

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        """Return `{T: uint8 [N,H,W,C]}` for uint8 NHWC `images`; rows keyed by `row_ids` for the noise."""
        steps = self.settings.langevin_steps
        out = {t: np.empty_like(images) for t in steps}
        for start in range(0, len(images), self.settings.batch_size):
            batch = images[start:start + self.settings.batch_size]
            chain = self.sampler.run(to_tensor(batch, device=self.device), steps=steps, seed=self.seed,
                                     row_ids=row_ids[start:start + len(batch)])
            for t, x_t in chain.snapshots.items():
                out[t][start:start + len(batch)] = to_pixels(x_t)
        return out
