"""PureGen combinations of EBM and DDPM purification (spec puregen.md §4), composed from `EbmPurifier` and `DdpmPurifier`.

The paper writes Psi_T with T = (T_EBM, T_DDPM, T_Reps). Here T_EBM is `ebm.langevin_steps` (a
list sweeps, one setting per value), T_DDPM is `ddpm.diffusion_start_steps` (the t* values; one
run yields every t*, keyed by t* like the `ddpm` purifier) and T_Reps is `reps`.

- `puregen-naive` (T_Reps = 1): T_EBM Langevin steps, then the DDPM forward jump and t* reverse
  steps. The paper's setting: [150, 75, 1].
- `puregen-reps` (T_Reps > 1): {T_EBM Langevin steps -> DDPM(t*)} repeated T_Reps times on the same
  chain. Table 10's setting: [10, 50, 5].
- `puregen-filt` (0 < k < 1): score every *unpurified* image with the EBM energy G_theta(x); the
  fraction k with the highest energy (most likely poisoned) is replaced by its purified version
  Psi_T(x), the rest stays raw: Psi_{T,k}(D) = Psi_T(D_max^(k)) u D_min^(1-k) (Eq. 14). Psi_T is
  the nested `transform` purifier (`ddpm`, `puregen-naive` or `puregen-reps`); Table 10's
  setting: [0, 125, 1], k = 0.5, i.e. `ddpm` at t* = 125. The ranking is over the images of one
  `purify` call, so the Ray Data stage must not split a dataset across calls for this purifier:
  either call `purify` on the whole training set, or (what the sweep does cheaply) purify every
  row with `transform` (cached, shared with that purifier's own rows), score the raw set with
  `EnergyScorer` and merge with `highest_energy_rows`. Both give the same images, because the
  transform's noise is keyed by row.

Between stages the chain stays in float [-1, 1] units (no 8-bit quantisation, as in the
official loop); the final images are clamped and rounded to uint8. Noise: repetition r uses seed
`repetition_seed(seed, r)` for both stages, with repetition 0 using `seed` itself, so
`puregen-naive` applies exactly the `ebm` purifier's chain and then the `ddpm` purifier's chain
(with the same seed) to each row; Langevin and DDPM noise streams never overlap.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, ClassVar, Literal, Self, Union

import numpy as np
import torch
from pydantic import Field, field_validator

from genlab.data.convert import to_pixels, to_tensor
from genlab.purify.base import Purifier, PurifierSettings
from genlab.purify.ddpm import DdpmPurifier, DdpmSettings
from genlab.purify.ebm import EBM_KIND, EbmPurifier, EbmSettings, load_ebm
from genlab.purify.model_source import ModelSource, model_dir
from genlab.runtime import derive_seed, resolve_device


class _ChainedSettings(PurifierSettings):
    """What naive and reps share: the EBM and DDPM purifier settings whose steps are T_EBM and T_DDPM."""

    sweepable: ClassVar[tuple[str, ...]] = ("reps",)
    ebm: EbmSettings = Field(default_factory=EbmSettings)  # EBM stage: model, Langevin eps/tau, device; langevin_steps = T_EBM
    ddpm: DdpmSettings = Field(default_factory=DdpmSettings)  # DDPM stage: model, device, speed; diffusion_start_steps = t* values
    reps: int | list[int] = 1  # T_Reps: repetitions of {EBM -> DDPM} on the same chain

    def settings(self) -> list[Self]:
        """Return one setting per (reps value, T_EBM value); the t* values stay together (one run yields them all)."""
        return [s.model_copy(update={"ebm": s.ebm.model_copy(update={"langevin_steps": [steps]})})
                for s in super().settings() for steps in s.ebm.langevin_steps]

    def snapshot_steps(self) -> list[int]:
        return self.ddpm.snapshot_steps()

    def label(self, steps: int = 0) -> str:
        t_stars = steps or ",".join(map(str, self.ddpm.diffusion_start_steps))
        label = f"{self.name}-E{','.join(map(str, self.ebm.langevin_steps))}-D{t_stars}"
        return label if self.name == "puregen-naive" else f"{label}-R{self.reps}"

    def snapshot_path(self) -> str | None:
        return "ddpm.diffusion_start_steps"

    def weights_fingerprint(self) -> str | None:
        return combined_fingerprint(self)


class PuregenNaiveSettings(_ChainedSettings):
    """PureGen-Naive, T = [T_EBM, T_DDPM, 1]: Langevin, then DDPM (defaults: the paper's [150, 75, 1])."""

    sweepable: ClassVar[tuple[str, ...]] = ()
    name: Literal["puregen-naive"] = "puregen-naive"
    reps: Literal[1] = 1  # T_Reps is 1 by definition (use puregen-reps for more)


class PuregenRepsSettings(_ChainedSettings):
    """PureGen-Reps, T = [T_EBM, T_DDPM, T_Reps > 1] (defaults: Table 10's [10, 50, 5])."""

    name: Literal["puregen-reps"] = "puregen-reps"
    ebm: EbmSettings = Field(default_factory=lambda: EbmSettings(langevin_steps=[10]))  # EBM stage; langevin_steps = T_EBM
    ddpm: DdpmSettings = Field(default_factory=lambda: DdpmSettings(diffusion_start_steps=[50]))  # DDPM stage; t* values
    reps: int | list[int] = 5  # T_Reps >= 2; a list sweeps

    @field_validator("reps")
    @classmethod
    def _at_least_two(cls, reps: int | list[int]) -> int | list[int]:
        if min(reps if isinstance(reps, list) else [reps]) < 2:
            raise ValueError("puregen-reps needs reps >= 2 (reps = 1 is puregen-naive)")
        return reps


class EnergyModelSettings(ModelSource):
    """The EBM that scores raw images for `puregen-filt` (an `ebm` checkpoint; no Langevin)."""

    model_kind: ClassVar[str] = EBM_KIND
    missing_model: ClassVar[str] = ("purifier puregen-filt needs energy_model.checkpoint=... or "
                                    "energy_model.registered_model=...")
    batch_size: int = Field(1024, ge=1)  # images per energy evaluation
    device: str = "auto"  # auto (cuda when present), cpu or cuda


Transform = Annotated[Union[DdpmSettings, PuregenNaiveSettings, PuregenRepsSettings], Field(discriminator="name")]


class PuregenFiltSettings(PurifierSettings):
    """PureGen-Filt: purify only the highest-energy fraction k of the set (defaults: Table 10's [0, 125, 1], k = 0.5)."""

    sweepable: ClassVar[tuple[str, ...]] = ("filter_fraction",)
    name: Literal["puregen-filt"] = "puregen-filt"
    filter_fraction: float | list[float] = 0.5  # k in (0, 1): share of images (highest energy) that get purified
    energy_model: EnergyModelSettings = Field(default_factory=EnergyModelSettings)  # the EBM that ranks raw images
    transform: Transform = Field(default_factory=lambda: DdpmSettings(diffusion_start_steps=[125]))  # Psi_T for the chosen rows

    @field_validator("filter_fraction")
    @classmethod
    def _fraction(cls, k: float | list[float]) -> float | list[float]:
        if not all(0 < value < 1 for value in (k if isinstance(k, list) else [k])):
            raise ValueError("filter_fraction must lie in (0, 1)")
        return k

    def settings(self) -> list[Self]:
        """Return one setting per (filter_fraction value, expanded transform setting)."""
        return [s.model_copy(update={"transform": t}) for s in super().settings() for t in s.transform.settings()]

    def snapshot_steps(self) -> list[int]:
        return self.transform.snapshot_steps()

    def label(self, steps: int = 0) -> str:
        return f"puregen-filt-k{self.filter_fraction}-{self.transform.label(steps)}"

    def snapshot_path(self) -> str | None:
        return f"transform.{self.transform.snapshot_path()}"

    def weights_fingerprint(self) -> str | None:
        return combined_fingerprint(self)


PuregenSettings = PuregenNaiveSettings | PuregenRepsSettings | PuregenFiltSettings


def repetition_seed(seed: int, repetition: int) -> int:
    """Return the noise seed of repetition `repetition` (0-based): `seed` itself for 0, else a 32-bit seed
    derived from both (`derive_seed("puregen-reps", seed, repetition)`)."""
    return seed if repetition == 0 else derive_seed("puregen-reps", seed, repetition)


class PuregenPurifier(Purifier):
    """Naive and Reps: {T_EBM Langevin steps -> DDPM(t*)} x T_Reps, through an `EbmPurifier` and a `DdpmPurifier`."""

    def __init__(self, settings: PuregenNaiveSettings | PuregenRepsSettings, seed: int) -> None:
        if len(settings.ebm.langevin_steps) != 1 or isinstance(settings.reps, list):
            raise ValueError(f"{settings.name} runs one T_EBM and one reps value; expand the setting with .settings()")
        self.settings, self.seed = settings, seed
        self.ebm = EbmPurifier(settings.ebm, seed)
        self.ddpm = DdpmPurifier(settings.ddpm, seed)

    def speed_params(self, image_shape: tuple[int, ...]) -> dict[str, str]:
        return {f"{stage}.{key}": value for stage, purifier in (("ebm", self.ebm), ("ddpm", self.ddpm))
                for key, value in purifier.speed_params(image_shape).items()}

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        """Return `{t*: uint8 [N,H,W,C]}` for uint8 NHWC `images`; rows keyed by `row_ids` for the noise.

        Images go through in the DDPM stage's batches; the Langevin stage splits each into its own
        batches (`_langevin`), so each network runs at the batch its fast path chose."""
        out = {t: np.empty_like(images) for t in self.settings.ddpm.diffusion_start_steps}
        size = self.ddpm.speed_path(images.shape).batch_size
        for start in range(0, len(images), size):
            rows = slice(start, start + size)
            for t, x in self.purify_tensor(to_tensor(images[rows], device=self.ebm.device), row_ids[rows]).items():
                out[t][rows] = to_pixels(x)
        return out

    def purify_tensor(self, x: torch.Tensor, row_ids: np.ndarray) -> dict[int, torch.Tensor]:
        """Return {t*: Psi_T(x)} for float NCHW images in [-1, 1]; the chain stays in float between stages."""
        langevin_steps = self.settings.ebm.langevin_steps[0]
        states: torch.Tensor | dict[int, torch.Tensor] = x
        for repetition in range(self.settings.reps):
            seed = repetition_seed(self.seed, repetition)
            states = self._langevin(states, langevin_steps, seed, row_ids)
            states = self.ddpm.purify_tensor(states, row_ids, seed=seed)
        return states

    def _langevin(self, states: torch.Tensor | dict[int, torch.Tensor], steps: int, seed: int,
                  row_ids: np.ndarray) -> torch.Tensor | dict[int, torch.Tensor]:
        """Run the EBM purifier's Langevin chains on one image batch or on every t* group in one batch, in the EBM's
        own batches (noise is keyed per row, so the split does not change a chain)."""
        joined = states if isinstance(states, torch.Tensor) else torch.cat(list(states.values()))
        keys = np.tile(row_ids, len(joined) // len(row_ids))
        size = self.ebm.speed_path((*joined.shape[2:], joined.shape[1])).batch_size  # HWC of the NCHW chains
        moved = torch.cat([self.ebm.sampler.run(joined[i:i + size], steps=steps, seed=seed,
                                                row_ids=keys[i:i + size]).snapshots[steps]
                           for i in range(0, len(joined), size)])
        return moved if isinstance(states, torch.Tensor) else dict(zip(states, moved.split(len(row_ids))))


class EnergyScorer:
    """G_theta(x) of raw uint8 images, from the EBM `EnergyModelSettings` names (loaded once)."""

    def __init__(self, settings: EnergyModelSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.model = load_ebm(model_dir(settings), self.device)

    @torch.no_grad()
    def scores(self, images: np.ndarray) -> np.ndarray:
        """Return float64 [N] energies of uint8 NHWC images (lower = more natural)."""
        step = self.settings.batch_size
        chunks = [self.model(to_tensor(images[i:i + step], device=self.device)).double().cpu()
                  for i in range(0, len(images), step)]
        return torch.cat(chunks).numpy() if chunks else np.zeros(0)


def highest_energy_rows(energies: np.ndarray, fraction: float) -> np.ndarray:
    """Return a bool mask [N] of the round(fraction * N) rows with the highest energy (ties: lower row first)."""
    count = int(round(fraction * len(energies)))
    mask = np.zeros(len(energies), dtype=bool)
    mask[np.argsort(-np.asarray(energies), kind="stable")[:count]] = True
    return mask


class PuregenFiltPurifier(Purifier):
    """Psi_{T,k}: the nested transform on the highest-energy fraction k of the images of one call, the rest raw."""

    def __init__(self, settings: PuregenFiltSettings, seed: int) -> None:
        if isinstance(settings.filter_fraction, list):
            raise ValueError("puregen-filt runs one filter_fraction; expand the setting with .settings()")
        self.settings = settings
        self.scorer = EnergyScorer(settings.energy_model)
        self.transform = build_puregen(settings.transform, seed=seed)

    def speed_params(self, image_shape: tuple[int, ...]) -> dict[str, str]:
        return self.transform.speed_params(image_shape)

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        """Return `{t*: uint8 [N,H,W,C]}`: `images` with their highest-energy fraction k replaced by Psi_T of them."""
        chosen = highest_energy_rows(self.scorer.scores(images), self.settings.filter_fraction)
        purified = self.transform.purify(images[chosen], row_ids[chosen])
        out = {}
        for t, rows in purified.items():
            out[t] = images.copy()
            out[t][chosen] = rows
        return out


def build_puregen(settings: DdpmSettings | PuregenSettings, *, seed: int) -> Purifier:
    """Return the purifier of one concrete (expanded) `ddpm` or PureGen-combination setting."""
    if isinstance(settings, DdpmSettings):
        return DdpmPurifier(settings, seed)
    if isinstance(settings, PuregenFiltSettings):
        return PuregenFiltPurifier(settings, seed)
    return PuregenPurifier(settings, seed)


def combined_fingerprint(settings: PuregenSettings) -> str:
    """Return a sha256 over the weight digests of every model the setting uses (for cache keys)."""
    if isinstance(settings, PuregenFiltSettings):
        parts = [settings.energy_model.weights_fingerprint(), settings.transform.weights_fingerprint()]
    else:
        parts = [settings.ebm.weights_fingerprint(), settings.ddpm.weights_fingerprint()]
    return hashlib.sha256("/".join(parts).encode()).hexdigest()
