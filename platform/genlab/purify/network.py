"""What the EBM and DDPM purifiers and their settings share: where the trained network comes from
(`genlab.purify.model_source`), the list of step counts one run yields (T or t* values), and how
the network runs (`genlab.samplers.speed`); `NetworkPurifier` loads the network once.

The speed fields (`precision`, `channels_last`, `dense_convs`, `compile`, `batch_size`) change how the same chain
runs, not what it computes. Each defaults to `auto`: the device's fast path
(`genlab.samplers.speed.device_fast_path`; fp32 and channels-last on a CPU, bf16, channels-last and
compiled on CUDA), which is what the sweep runs and what the purifier reports in `speed_path`.
`speed_loops` names the two ways `bench/purify_speed.py` compares: the official code's loop
(fp32, eager, batch 128) and `auto`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal

import torch
from pydantic import Field

from genlab.purify.base import Purifier, PurifierSettings
from genlab.purify.model_source import ModelSource, model_dir
from genlab.runtime import resolve_device
from genlab.samplers.speed import SpeedPath, cpu_batch_size, device_fast_path, resolve_precision


class NetworkSettings(ModelSource, PurifierSettings):
    """Base of the settings of a purifier that runs a trained network: its model source, the step counts one
    run yields and the speed fields.

    A subclass says what it is in its class keywords: `kind` (the checkpoint kind, also the
    purifier's name), `snapshot_field` (its list field of step counts, e.g. "langevin_steps"),
    `label_prefix` (labels read `<prefix><steps>`, e.g. "ebm-T" -> ebm-T150), `cuda_batch_size`
    (its `auto` batch on CUDA) and `cpu_batch_pixels` (its `auto` batch on a CPU holds about this
    many pixels per channel, or pixel values over all channels where `cpu_batch_counts_channels`:
    `genlab.samplers.speed.cpu_batch_size`).
    """

    snapshot_field: ClassVar[str]
    label_prefix: ClassVar[str]
    cuda_batch_size: ClassVar[int]
    cpu_batch_pixels: ClassVar[int]
    cpu_batch_counts_channels: ClassVar[bool]
    device: str = "auto"  # auto (cuda when present), cpu or cuda
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "auto"  # network arithmetic: auto = bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | Literal["auto"] = "auto"  # channels-last tensors into the network (auto: yes on CPU and CUDA)
    dense_convs: bool | Literal["auto"] = "auto"  # covering convolutions as dense products (auto: on CPU only)
    compile: bool | Literal["auto"] = "auto"  # torch.compile net and noise (auto: on CUDA only; a compile per batch shape)
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"  # images per chain batch (auto: per device)

    def __init_subclass__(cls, *, kind: str, snapshot_field: str, label_prefix: str, cuda_batch_size: int,
                          cpu_batch_pixels: int, cpu_batch_counts_channels: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.model_kind, cls.missing_model = kind, f"purifier {kind} needs checkpoint=... or registered_model=..."
        cls.snapshot_field, cls.label_prefix = snapshot_field, label_prefix
        cls.cuda_batch_size, cls.cpu_batch_pixels = cuda_batch_size, cpu_batch_pixels
        cls.cpu_batch_counts_channels = cpu_batch_counts_channels

    def snapshot_steps(self) -> list[int]:
        return list(getattr(self, self.snapshot_field))

    def snapshot_path(self) -> str | None:
        return self.snapshot_field

    def label(self, steps: int = 0) -> str:
        return f"{self.label_prefix}{steps or ','.join(map(str, self.snapshot_steps()))}"

    @classmethod
    def speed_loops(cls) -> dict[str, dict[str, Any]]:
        """Return the speed fields of the "reference" loop (the official code's: fp32, eager, batch 128) and of the
        "optimized" one (every field `auto`: the device's fast path, what the sweep runs)."""
        return {"reference": {"precision": "fp32", "channels_last": False, "dense_convs": False, "compile": False,
                              "batch_size": 128},
                "optimized": {"precision": "auto", "channels_last": "auto", "dense_convs": "auto", "compile": "auto",
                              "batch_size": "auto"}}

    def speed_path(self, device: torch.device, image_shape: tuple[int, ...]) -> SpeedPath:
        """Return how this setting runs on `device` for images of `image_shape` (NHWC or HWC), every `auto` field
        resolved."""
        batch = self.batch_size
        if batch == "auto":
            height, width, channels = image_shape[-3:]
            image_size = height * width * (channels if self.cpu_batch_counts_channels else 1)
            batch = self.cuda_batch_size if device.type == "cuda" else cpu_batch_size(self.cpu_batch_pixels, image_size)
        return SpeedPath(device.type, **self.sampler_options(device), batch_size=batch)

    def sampler_options(self, device: torch.device) -> dict[str, Any]:
        """Return the sampler keyword arguments `precision`, `channels_last`, `dense_convs` and `compile` on `device`,
        every `auto` field resolved (the batch is the purifier's, not the sampler's)."""
        _, channels_last, dense_convs, compile = device_fast_path(device)
        return {"precision": resolve_precision(self.precision, device),
                "channels_last": channels_last if self.channels_last == "auto" else self.channels_last,
                "dense_convs": dense_convs if self.dense_convs == "auto" else self.dense_convs,
                "compile": compile if self.compile == "auto" else self.compile}


class NetworkPurifier(Purifier):
    """Base of the EBM and DDPM purifiers: the setting, the noise seed, the device and the trained network."""

    def __init__(self, settings: NetworkSettings, seed: int,
                 load: Callable[[Path, torch.device], torch.nn.Module]) -> None:
        self.settings, self.seed = settings, seed
        self.device = resolve_device(settings.device)
        self.model = load(model_dir(settings), self.device)  # once per purifier (one copy per Ray actor)

    def speed_path(self, image_shape: tuple[int, ...]) -> SpeedPath:
        """Return how this purifier runs images of `image_shape` (NHWC or HWC) on its device; for NHWC the batch is
        the one it runs, at most N (a Ray Data call of 128 rows runs one batch of 128 whatever the setting's batch)."""
        path = self.settings.speed_path(self.device, image_shape)
        rows = image_shape[0] if len(image_shape) == 4 else path.batch_size
        return dataclasses.replace(path, batch_size=min(path.batch_size, rows))

    def speed_params(self, image_shape: tuple[int, ...]) -> dict[str, str]:
        return self.speed_path(image_shape).params()
