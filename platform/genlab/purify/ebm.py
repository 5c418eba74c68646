"""PureGen-EBM purifier: Psi_T(x) = T Langevin steps on a trained EBM, started at the image.

Images (uint8 NHWC) map to x = pixels / 127.5 - 1 in [-1, 1]; one chain per image runs the
update of `genlab.samplers.langevin` with the spec's step size (1.25e-2) and temperature (1e-4)
and yields snapshots at every requested T. Each snapshot is mapped back to pixels and, as an
intentional deviation from the official code (which casts out-of-range values to uint8
unchecked, spec puregen.md §2), clamped to [0, 255] and rounded. Noise is keyed by
(seed, row_id), so a row gets the same transform in any batch, actor or device.

The EBM comes from a checkpoint directory (`checkpoint`) or the MLflow model registry
(`registered_model` + `model_version`), one of the two (`genlab.purify.model_source`); it is loaded
once per purifier (one copy per Ray actor).

Speed: `precision`, `channels_last`, `compile` and `batch_size` change how the same chain runs,
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
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.model_source import registered_checkpoint
from genlab.purify.network import NetworkPurifier, NetworkSettings
from genlab.samplers.langevin import LangevinSampler

EBM_KIND = "ebm"


class EbmSettings(NetworkSettings, kind=EBM_KIND, snapshot_field="langevin_steps", label_prefix="ebm-T",
                  cuda_batch_size=4096, cpu_batch_pixels=65536, cpu_batch_counts_channels=True):
    """PureGen-EBM: Langevin purification with a trained EBM; `langevin_steps` are the snapshot T values of one chain."""

    name: Literal["ebm"] = "ebm"
    langevin_steps: list[int] = Field(default_factory=lambda: [150])  # T values (snapshots of one chain); paper: 150
    step_size: float = Field(1.25e-2, gt=0)  # Langevin eps, [-1,1] units (per-step noise std)
    temperature: float = Field(1e-4, gt=0)  # Langevin tau (energy is divided by it)

    @field_validator("langevin_steps")
    @classmethod
    def _positive_steps(cls, steps: list[int]) -> list[int]:
        if not steps or min(steps) < 1:
            raise ValueError("langevin_steps must be a non-empty list of step counts >= 1")
        return sorted(set(steps))


def resolve_ebm_checkpoint(name: str, version_or_alias: str | int | None = None) -> Path:
    """Return the local directory of a registered EBM (download cached under `.genlab/models`).

    `version_or_alias`: a version number, an alias, or None / `latest` for the newest version.
    Raises `CheckpointError` if it is absent or not an EBM checkpoint.
    """
    return registered_checkpoint(name, version_or_alias, kind=EBM_KIND)


def load_ebm(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Return the EBM saved at checkpoint directory `path`, in eval mode on `device`, with frozen weights."""
    return load_frozen_model(path, kind=EBM_KIND, config_cls=EbmNetConfig, build=build_ebm, device=device)


class EbmPurifier(NetworkPurifier):
    """Psi_T for every T in `settings.langevin_steps`, from one Langevin chain per image."""

    def __init__(self, settings: EbmSettings, seed: int) -> None:
        super().__init__(settings, seed, load_ebm)
        self.sampler = LangevinSampler(self.model, step_size=settings.step_size, temperature=settings.temperature,
                                       **settings.sampler_options(self.device))

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        """Return `{T: uint8 [N,H,W,C]}` for uint8 NHWC `images`; rows keyed by `row_ids` for the noise."""
        steps = self.settings.langevin_steps
        out = {t: np.empty_like(images) for t in steps}
        size = self.speed_path(images.shape).batch_size
        for start in range(0, len(images), size):
            batch = images[start:start + size]
            chain = self.sampler.run(to_tensor(batch, device=self.device), steps=steps, seed=self.seed,
                                     row_ids=row_ids[start:start + len(batch)])
            for t, x_t in chain.snapshots.items():
                out[t][start:start + len(batch)] = to_pixels(x_t)
        return out
