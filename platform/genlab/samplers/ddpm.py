"""DDPM forward jump and reverse chain on a noise-prediction UNet, with diffusers' `DDPMScheduler` schedule.

The schedule is the spec's (puregen.md §3.1): `DDPMScheduler(num_train_timesteps=1000)` with the
library defaults, i.e. linear betas 1e-4 .. 0.02, eps-prediction, `fixed_small` variance and
`clip_sample=True`. Equation numbers refer to Ho et al. 2020 (arXiv 2006.11239), as diffusers'
comments do. All tensors are images in [-1, 1] units, NCHW.

- `q_sample(x0, t, z)`: the one-shot forward jump x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z (Eq. 4),
  computed by `DDPMScheduler.add_noise`.
- `p_sample(x_t, t, z)`: one ancestral reverse step x_t -> x_{t-1}: x0_hat from the predicted noise
  (Eq. 15), clipped to [-1, 1], posterior mean (Eq. 7), plus sigma_t z for t > 0 (sigma_t^2 =
  beta-tilde_t, `fixed_small`). It is `DDPMScheduler.step`'s update with the noise passed in:
  `step` draws its noise from one torch generator for the whole batch, which would tie a row's
  result to its batch, so the coefficients are tabulated from the scheduler's `alphas_cumprod`
  once, with the same float32 expressions (a test checks `p_sample` against `step` given the
  same noise).
- `purify(x0, start_steps)`: Psi_t*(x) of the spec (§3.3) for every t* in `start_steps`: jump to
  noise level t*, then exactly t* reverse steps t = t*-1, ..., 0 (the official code's off-by-one:
  noise injected at index t*, denoising starts at t*-1).

Noise is counter-based per row (`genlab.samplers.noise`), keyed by (seed, row_id)
and the step index, so a row's result does not depend on its batch, batch size or device. DDPM
steps use step indices offset by `NOISE_STEP_OFFSET`, so with the same seed they never reuse a
Langevin chain's noise (the PureGen combinations run both on one row).

What several t* values share in one call: every row uses the same forward noise z and the same
reverse noise at each step t for every t* (common random numbers: the result for one t* is the
same whether or not other t* values are requested), and the chains run staggered in one loop
over t = max(t*)-1, ..., 0: a t* group joins the batch when t reaches t*-1, so each step is one
UNet call on every chain currently at step t. The UNet work itself (sum of t* evaluations per
row) cannot be shared: chains from different t* are different trajectories. What is saved is
the number of calls (max t* instead of sum t*) and their size (bigger batches per call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from genlab.samplers.noise import check_one_key_per_row, row_keys
from genlab.samplers.speed import NetRunner, Precision

if TYPE_CHECKING:
    from diffusers import DDPMScheduler

NUM_TRAIN_TIMESTEPS = 1000  # length of the linear beta schedule (the spec's, diffusers' default)
NOISE_STEP_OFFSET = 1 << 24  # chain_noise step index of reverse step t is NOISE_STEP_OFFSET + t
FORWARD_NOISE_STEP = NOISE_STEP_OFFSET + NUM_TRAIN_TIMESTEPS  # chain_noise step index of the forward jump's z
MAX_START_STEP = NUM_TRAIN_TIMESTEPS - 1  # largest t*: the jump uses abar_{t*}, which exists for t* <= 999


def make_scheduler() -> DDPMScheduler:
    """Return the spec's scheduler: 1000 steps, linear betas 1e-4..0.02, eps-prediction, fixed_small, clip_sample."""
    from diffusers import DDPMScheduler  # here, not at the top: 2 s that EBM-only purifier actors never pay

    return DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule="linear", beta_start=1e-4,
                         beta_end=0.02, prediction_type="epsilon", variance_type="fixed_small", clip_sample=True)


def noise_std(t: int) -> float:
    """Return sigma_t = sqrt(1 - abar_t) of the forward jump to step t ([-1, 1] units; t=75 -> 0.250)."""
    return float((1.0 - make_scheduler().alphas_cumprod[t]) ** 0.5)


@dataclass(frozen=True)
class _Coefficients:
    """Per-timestep float32 tables [T] of the reverse step (Eq. 7 and 15), on the sampler's device."""

    sqrt_abar: torch.Tensor  # sqrt(abar_t)
    sqrt_one_minus_abar: torch.Tensor  # sqrt(1 - abar_t)
    x0_coeff: torch.Tensor  # posterior mean coefficient of x0_hat
    xt_coeff: torch.Tensor  # posterior mean coefficient of x_t
    sigma: torch.Tensor  # posterior std sqrt(beta-tilde_t) (used for t > 0)

    @classmethod
    def of(cls, scheduler: DDPMScheduler, device: torch.device) -> "_Coefficients":
        abar = scheduler.alphas_cumprod.to(torch.float32)
        abar_prev = torch.cat([torch.ones(1), abar[:-1]])
        alpha = abar / abar_prev
        beta = 1 - alpha
        variance = ((1 - abar_prev) / (1 - abar) * beta).clamp(min=1e-20)
        tables = (abar ** 0.5, (1 - abar) ** 0.5, abar_prev ** 0.5 * beta / (1 - abar),
                  alpha ** 0.5 * (1 - abar_prev) / (1 - abar), variance ** 0.5)
        return cls(*(table.to(device) for table in tables))


class DdpmSampler:
    """Forward jumps and reverse chains of a noise-prediction net `eps_theta(x, t)` (see module docstring).

    The net is used as given (callers put it in eval mode on the device they want); chains run
    on its device. `precision`, `channels_last`, `dense_convs` and `compile` are the speed options of
    `genlab.samplers.speed` (none changes the update; the chain state and the step arithmetic
    stay fp32). `net_calls` and `net_evaluations` (rows x calls) count the net's use over the
    sampler's lifetime.
    """

    def __init__(self, net: nn.Module, *, precision: Precision = "fp32", channels_last: bool = False,
                 dense_convs: bool = False, compile: bool = False) -> None:
        self.device = next(net.parameters()).device
        self.runner = NetRunner(net, precision=precision, channels_last=channels_last, dense_convs=dense_convs,
                                compile=compile)
        self.scheduler = make_scheduler()
        self._coeff = _Coefficients.of(self.scheduler, self.device)
        self.net_calls = 0
        self.net_evaluations = 0

    def predict_noise(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """Return eps_theta(x_t, t) as fp32 [N, C, H, W] for images x_t all at timestep t."""
        eps = self.runner(x_t, torch.full((len(x_t),), t, dtype=torch.int64, device=x_t.device))
        self.net_calls += 1
        self.net_evaluations += len(x_t)
        return eps

    def q_sample(self, x0: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """Return x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (Eq. 4; `DDPMScheduler.add_noise`), t in 0..999."""
        return self.scheduler.add_noise(x0, noise, torch.full((len(x0),), t, dtype=torch.int64, device=x0.device))

    def p_sample(self, x_t: torch.Tensor, t: int, noise: torch.Tensor | None) -> torch.Tensor:
        """Return x_{t-1}: one ancestral step from x_t [N, C, H, W] (all at step t); `noise` ~ N(0, I), unused at t = 0."""
        c = self._coeff
        eps = self.predict_noise(x_t, t)
        x0_hat = ((x_t - c.sqrt_one_minus_abar[t] * eps) / c.sqrt_abar[t]).clamp(-1.0, 1.0)  # Eq. 15, clip_sample
        mean = c.x0_coeff[t] * x0_hat + c.xt_coeff[t] * x_t  # Eq. 7
        return mean + c.sigma[t] * noise if t > 0 else mean

    def p_sample_loop(self, noisy: dict[int, torch.Tensor], keys: torch.Tensor) -> dict[int, torch.Tensor]:
        """Run each x_{t*} in `noisy` ({t*: [N, C, H, W]}, rows keyed by `keys`) through t* reverse steps to x_0.

        Chains run staggered in one loop (module docstring): the group of t* joins when the loop
        reaches t*-1; reverse noise at step t is keyed by (row key, t), the same for every group.
        """
        starts = sorted(noisy, reverse=True)
        if not starts or starts[-1] < 1 or starts[0] > MAX_START_STEP:
            raise ValueError(f"diffusion start steps must lie in 1..{MAX_START_STEP}, got {starts}")
        shape = tuple(noisy[starts[0]].shape[1:])
        active: torch.Tensor | None = None
        joined: list[int] = []
        for t in range(starts[0] - 1, -1, -1):
            if t + 1 in noisy:
                active = noisy[t + 1] if active is None else torch.cat([active, noisy[t + 1]])
                joined.append(t + 1)
            noise = self.runner.step_noise(keys, NOISE_STEP_OFFSET + t, shape).repeat(len(joined), 1, 1, 1) if t > 0 else None
            active = self.p_sample(active, t, noise)
        return dict(zip(joined, active.split(len(keys))))

    @torch.no_grad()
    def purify(self, x0: torch.Tensor | dict[int, torch.Tensor], start_steps: list[int], *, seed: int,
               row_ids: torch.Tensor | np.ndarray) -> dict[int, torch.Tensor]:
        """Return {t*: Psi_t*(x0)} for every t* in `start_steps` (1..999): forward jump to t*, t* reverse steps.

        x0: images [N, C, H, W] in [-1, 1] units, or {t*: images} to start each t* from its own
        images (rows aligned); moved to the sampler's device. seed and row_ids (int, < 2^32) key
        the per-row noise. Outputs are fp32, detached and unclamped (x0_hat is clipped each step,
        so they stay near [-1, 1]).
        """
        starts = sorted(set(start_steps))
        first = x0 if isinstance(x0, torch.Tensor) else x0[starts[0]]
        keys = row_keys(seed, row_ids, self.device)
        check_one_key_per_row(keys, len(first))
        z = self.runner.step_noise(keys, FORWARD_NOISE_STEP, tuple(first.shape[1:]))
        noisy = {s: self.q_sample((x0 if isinstance(x0, torch.Tensor) else x0[s]).to(self.device, torch.float32), s, z)
                 for s in starts}
        return self.p_sample_loop(noisy, keys)
