"""What the EBM and DDPM purifiers and their settings share: where the trained network comes from
(`genlab.purify.model_source`), the list of step counts one run yields (T or t* values), and how
the network runs (`genlab.samplers.speed`); `NetworkPurifier` loads the network once.

The speed fields (`precision`, `channels_last`, `compile`, and each purifier's own `batch_size`)
change how the same chain runs, not what it computes. `speed_loops` names the two ways
`bench/purify_speed.py` compares: the official code's loop (fp32, eager, batch 128) and the fast
one (bf16 autocast with TF32 for the rest, channels-last, compiled, a large batch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import torch

from genlab.purify.base import Purifier, PurifierSettings
from genlab.purify.model_source import ModelSource, model_dir
from genlab.runtime import resolve_device
from genlab.samplers.speed import resolve_precision


class NetworkSettings(ModelSource, PurifierSettings):
    """Base of the settings of a purifier that runs a trained network: its model source, the step counts one
    run yields and the speed fields.

    A subclass says what it is in its class keywords: `kind` (the checkpoint kind, also the
    purifier's name), `snapshot_field` (its list field of step counts, e.g. "langevin_steps"),
    `label_prefix` (labels read `<prefix><steps>`, e.g. "ebm-T" -> ebm-T150) and
    `optimized_batch_size` (the batch of its "optimized" speed loop).
    """

    snapshot_field: ClassVar[str]
    label_prefix: ClassVar[str]
    optimized_batch_size: ClassVar[int]
    device: str = "auto"  # auto (cuda when present), cpu or cuda
    precision: Literal["auto", "fp32", "tf32", "bf16"] = "auto"  # network arithmetic: auto = bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool = False  # feed the network channels-last tensors (faster convolutions on CUDA)
    compile: bool = False  # torch.compile the network and the per-row noise (pays a compile per new batch shape)

    def __init_subclass__(cls, *, kind: str, snapshot_field: str, label_prefix: str, optimized_batch_size: int,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.model_kind, cls.missing_model = kind, f"purifier {kind} needs checkpoint=... or registered_model=..."
        cls.snapshot_field, cls.label_prefix = snapshot_field, label_prefix
        cls.optimized_batch_size = optimized_batch_size

    def snapshot_steps(self) -> list[int]:
        return list(getattr(self, self.snapshot_field))

    def snapshot_path(self) -> str | None:
        return self.snapshot_field

    def label(self, steps: int = 0) -> str:
        return f"{self.label_prefix}{steps or ','.join(map(str, self.snapshot_steps()))}"

    @classmethod
    def speed_loops(cls) -> dict[str, dict[str, Any]]:
        """Return the speed fields of the "reference" loop (the official code's) and of the "optimized" one."""
        return {"reference": {"precision": "fp32", "channels_last": False, "compile": False, "batch_size": 128},
                "optimized": {"precision": "bf16", "channels_last": True, "compile": True,
                              "batch_size": cls.optimized_batch_size}}

    def speed_options(self, device: torch.device) -> dict[str, Any]:
        """Return the sampler keyword arguments `precision` (resolved for `device`), `channels_last` and `compile`."""
        return {"precision": resolve_precision(self.precision, device), "channels_last": self.channels_last,
                "compile": self.compile}


class NetworkPurifier(Purifier):
    """Base of the EBM and DDPM purifiers: the setting, the noise seed, the device and the trained network."""

    def __init__(self, settings: NetworkSettings, seed: int,
                 load: Callable[[Path, torch.device], torch.nn.Module]) -> None:
        self.settings, self.seed = settings, seed
        self.device = resolve_device(settings.device)
        self.model = load(model_dir(settings), self.device)  # once per purifier (one copy per Ray actor)
