"""FrieNDs (Liu et al. 2022, "Friendly Noise against Adversarial Noise"): the friendly noise and its
random-noise part, as a training-time defense of `genlab.train.classifier.train_classifier`.

Friendly noise d of one image x (in [0, 1] units, |d| <= budget) maximises its size while keeping
the model's output: minimise KL(f(x) || f(clip(x + d))) - mu * mean(d^2) by SGD (lr 100, momentum
0.9, Nesterov; lr x0.1 at half and three quarters of the steps), from d ~ U(-budget/2, budget/2).
The model is the classifier being trained, after `begin_epoch` epochs on the (poisoned) data it
was given: no clean or oracle model. From then on each batch trains on clip(x + d + r), r fresh
random noise (Bernoulli +-scale or Gaussian std scale) on every batch.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from genlab.train.defenses.settings import FriendlyNoiseSettings


def friendly_noise(model: nn.Module, data: torch.Tensor, settings: FriendlyNoiseSettings, *,
                   generator: torch.Generator) -> torch.Tensor:
    """Return the friendly noise of float pixel images `data` [N, C, H, W] (0..255): float, same shape,
    pixel units, every value within +-`settings.budget`. The model's parameter gradients are left cleared."""
    model.eval()
    budget = settings.budget / 255.0
    out = torch.empty_like(data)
    for start in range(0, len(data), settings.batch_size):
        images = data[start:start + settings.batch_size] / 255.0
        with torch.no_grad():
            reference = F.log_softmax(model(images * 255.0), dim=1)
        init = (torch.rand(images.shape, generator=generator) - 0.5) * budget
        noise = init.to(images.device).requires_grad_(True)
        optimizer = torch.optim.SGD([noise], lr=settings.lr, momentum=0.9, nesterov=True)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [settings.steps // 2, settings.steps * 3 // 4])
        for _ in range(settings.steps):
            clamped = noise.clamp(-budget, budget)
            log_probs = F.log_softmax(model((images + clamped).clamp(0, 1) * 255.0), dim=1)
            divergence = F.kl_div(log_probs, reference, reduction="batchmean", log_target=True)
            loss = divergence - settings.constraint_weight * clamped.square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        out[start:start + len(images)] = noise.detach().clamp(-budget, budget) * 255.0
    model.zero_grad(set_to_none=True)
    return out


def random_noise(shape: torch.Size, settings: FriendlyNoiseSettings, generator: torch.Generator) -> torch.Tensor:
    """Return FrieNDs' random noise (CPU float, pixel units): Bernoulli +-scale, Gaussian std scale, or zeros."""
    if settings.random_noise == "bernoulli":
        return ((torch.rand(shape, generator=generator) < 0.5).float() * 2 - 1) * settings.random_noise_scale
    if settings.random_noise == "gaussian":
        return torch.randn(shape, generator=generator) * settings.random_noise_scale
    return torch.zeros(shape)


class FriendlyNoiseTraining:
    """The TrainingDefense of FrieNDs: makes the friendly noise before epoch `begin_epoch + 1` and adds it,
    with fresh random noise, to every batch. `cost_s` is the seconds spent making the noise."""

    def __init__(self, settings: FriendlyNoiseSettings, *, generator: torch.Generator) -> None:
        self.settings, self.generator = settings, generator
        self.noise: torch.Tensor | None = None
        self.cost_s = 0.0

    def epoch_rows(self, epoch: int, model: nn.Module, data: torch.Tensor, targets: torch.Tensor) -> None:
        """Make the friendly noise when `epoch` is the first after `begin_epoch`; return None (train on every row)."""
        if self.noise is None and epoch == self.settings.begin_epoch + 1:
            started = time.perf_counter()
            self.noise = friendly_noise(model, data, self.settings, generator=self.generator)
            self.cost_s += time.perf_counter() - started
        return None

    def batch(self, batch: torch.Tensor, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the batch plus its friendly noise (once made) and fresh random noise, clipped to 0..255."""
        out = batch + random_noise(batch.shape, self.settings, generator).to(batch.device)
        if self.noise is not None:
            out = out + self.noise[index]
        return out.clamp(0, 255)
