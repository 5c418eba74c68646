"""Purifiers as input transforms an attacker can differentiate: float NCHW images in [0, 1] in, the same out.

The value range is torchattacks' ([0, 1]); the generative models work in [-1, 1] (x = 2u - 1)
and the output is clamped back to [0, 1] without 8-bit rounding (an attacker works on floats).

- `LangevinTransform`: Psi_T of PureGen-EBM (spec puregen.md §2), x <- x - (eps^2/2) grad G(x)/tau
  + eps xi, T steps from the image. With `differentiable=True` the chain keeps its graph
  (`create_graph` on every energy gradient), so gradients flow through all T steps; otherwise
  the chain is a black box (wrap it in `genlab.sweep.adaptive.eot.bpda`).
- `DdpmTransform`: Psi_t* of PureGen-DDPM (§3.3): forward jump to t*, then t* ancestral reverse
  steps (`genlab.samplers.ddpm.DdpmSampler`), differentiable through the UNet when asked.
- `QuantizeTransform`: rounding to `levels` grey levels. Its gradient is zero almost everywhere:
  the planted gradient-masking defense the unbounded-attack sanity check must catch.

Randomness: every call draws fresh noise, keyed by (seed, call index, row) through the samplers'
counter-based noise (`genlab.samplers.noise`), so repeated calls are the purifier's independent
draws (what EOT averages over) and a run with the same seed repeats exactly.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from genlab.config import StrictModel
from genlab.errors import ConfigError
from genlab.purify.ddpm import DdpmSettings, load_ddpm
from genlab.purify.ebm import EbmSettings, load_ebm
from genlab.purify.model_source import model_dir
from genlab.runtime import derive_seed
from genlab.samplers.ddpm import FORWARD_NOISE_STEP, NOISE_STEP_OFFSET, DdpmSampler
from genlab.samplers.noise import chain_noise, row_keys


class QuantizeSettings(StrictModel):
    """The planted gradient-masking "purifier": rounding to `levels` grey levels (for the sanity checks)."""

    name: Literal["quantize"] = "quantize"
    levels: int = Field(4, ge=2)  # values per channel after rounding

    def label(self, steps: int = 0) -> str:
        """Return e.g. `quantize-4`."""
        return f"quantize-{self.levels}"


class StochasticTransform:
    """Base of the purifier transforms: a seed and a call counter, so each call gets its own noise draw."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.calls = 0  # calls so far (one purifier draw per image each)
        self.images = 0  # images transformed so far (the attack's purifier cost)

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """Return per-row noise keys of this call (fresh for every call) and count the call."""
        self.calls += 1
        self.images += len(x)
        return row_keys(derive_seed("adaptive-transform", self.seed, self.calls), torch.arange(len(x)), x.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LangevinTransform(StochasticTransform):
    """Psi_T: `steps` Langevin steps on the energy net `energy` (eval mode, frozen), from the image."""

    def __init__(self, energy: nn.Module, *, steps: int, step_size: float = 1.25e-2, temperature: float = 1e-4,
                 differentiable: bool = False, seed: int = 0) -> None:
        super().__init__(seed)
        self.energy, self.steps, self.differentiable = energy, steps, differentiable
        self.step_size, self.temperature = step_size, temperature

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return Psi_T(x) in [0, 1] for images x [N, C, H, W] in [0, 1] (graph kept if differentiable)."""
        keys = self._keys(x)
        keep_graph = self.differentiable and x.requires_grad and torch.is_grad_enabled()
        state = 2 * x - 1
        for k in range(1, self.steps + 1):
            with torch.enable_grad():
                leaf = state if keep_graph else state.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.energy(leaf).sum(), leaf, create_graph=keep_graph)
            state = state - self.step_size ** 2 / 2 * grad / self.temperature
            state = state + self.step_size * chain_noise(keys, k, tuple(x.shape[1:]))
            state = state if keep_graph else state.detach()
        return ((state.clamp(-1, 1) + 1) / 2)


class DdpmTransform(StochasticTransform):
    """Psi_t*: forward jump to noise level `start_step` (t*), then t* reverse steps of the noise-prediction net."""

    def __init__(self, unet: nn.Module, *, start_step: int, differentiable: bool = False, seed: int = 0) -> None:
        super().__init__(seed)
        self.sampler = DdpmSampler(unet)
        self.start_step, self.differentiable = start_step, differentiable

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return Psi_t*(x) in [0, 1] for images x [N, C, H, W] in [0, 1]."""
        keys = self._keys(x)
        shape = tuple(x.shape[1:])
        with torch.set_grad_enabled(self.differentiable and x.requires_grad and torch.is_grad_enabled()):
            state = self.sampler.q_sample(2 * x - 1, self.start_step, chain_noise(keys, FORWARD_NOISE_STEP, shape))
            for t in range(self.start_step - 1, -1, -1):
                noise = chain_noise(keys, NOISE_STEP_OFFSET + t, shape) if t > 0 else None
                state = self.sampler.p_sample(state, t, noise)
        return (state.clamp(-1, 1) + 1) / 2


class QuantizeTransform(StochasticTransform):
    """Rounding to `levels` evenly spaced values in [0, 1]: deterministic, gradient zero almost everywhere."""

    def __init__(self, levels: int = 4) -> None:
        super().__init__(seed=0)
        self.levels = levels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return x rounded to the nearest of `levels` values (its autograd gradient is 0: masked)."""
        self.calls += 1
        self.images += len(x)
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


class IdentityTransform(StochasticTransform):
    """No purifier: returns its input (the undefended classifier's transform)."""

    def __init__(self) -> None:
        super().__init__(seed=0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return x unchanged."""
        return x


def transform_for(settings: EbmSettings | DdpmSettings | QuantizeSettings, *, differentiable: bool, seed: int,
                  device: torch.device | str = "cpu") -> StochasticTransform:
    """Return the transform of one purifier setting whose model has a local checkpoint (one T or t* value)."""
    if isinstance(settings, QuantizeSettings):
        return QuantizeTransform(settings.levels)
    steps = settings.snapshot_steps()
    if len(steps) != 1:
        raise ConfigError(f"purifier {settings.name}: give one step count, got {steps}")
    if isinstance(settings, EbmSettings):
        return LangevinTransform(load_ebm(model_dir(settings), device), steps=steps[0], step_size=settings.step_size,
                                 temperature=settings.temperature, differentiable=differentiable, seed=seed)
    return DdpmTransform(load_ddpm(model_dir(settings), device), start_step=steps[0], differentiable=differentiable,
                         seed=seed)
