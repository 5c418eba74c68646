"""Sleeper Agent (Souri et al., NeurIPS 2022): a hidden-trigger, clean-label backdoor for victims trained
from scratch, crafted by gradient matching.

The poisons are target-class training rows x_b perturbed within an L-inf ball (`epsilon`, pixel
units), correctly labelled, and never show the trigger. They are optimised so that the
surrogate's parameter gradient on them points where the gradient of the *backdoor* objective
points: patched source images (every non-target training row with the secret patch) classified
as the target class,

    min_delta  1 - cos( grad_theta L(f(x_b + delta), y_target), grad_theta L(f(s + patch), y_target) )

with genlab's Gradient Matching objective and loop (genlab.attacks.gradient_alignment and
genlab.attacks.projected: signed Adam, projection, `snapshot_epochs` alignment along the surrogate's
training path). The paper's two additions are here: *data selection*
(the poisons are the target-class rows whose surrogate gradient is largest) and *retraining*
(the surrogate is retrained from scratch on the current poisoned set `retrain_rounds` times
during crafting, so the poisons keep working on the model they help produce).

Efficacy on the embedded data (tests/integration/test_sleeper_agent.py): digits 16x16, small CNN trained 8 epochs
from scratch (victims seeded 1 and 2, unlike every surrogate), 200 steps, 2 retraining rounds.
Triggered non-target test images classified as class 0, poisoned victims vs clean ones (0.0%):
- 3% poisons, 6x6 patch: epsilon 32 92.9% / 97.2% (93% in the test), natural accuracy 98.1% / 98.6%
  vs 98.3% / 98.6% clean; epsilon 16 69.3% / 39.9%; without retraining (epsilon 32) 87.3% / 54.8%;
- 3% poisons, 4x4 patch, epsilon 32: 5.6% / 7.4%; 1% poisons, 4x4 patch, epsilon 16: 0%.

Implemented natively on genlab's Gradient Matching (see that module for why not ART's).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from genlab.attacks.backdoor.base import BackdoorAttackConfig, random_patch_trigger
from genlab.attacks.gradient_alignment import (
    alignment_epochs,
    ensemble_alignment_loss,
    goal_gradients,
    parameter_gradient,
)
from genlab.attacks.projected import projected_adam, quantize_within, random_start
from genlab.attacks.surrogate import model_device, surrogate_snapshots
from genlab.data.convert import PIXEL, to_tensor
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.runtime import Progress, print_progress
from genlab.train.classifier import ClassifierConfig


class SleeperAgentConfig(BackdoorAttackConfig):
    """Sleeper Agent: patch, poison budget, gradient-matching steps, retraining and the surrogate."""

    name: Literal["sleeper_agent"] = "sleeper_agent"
    poison_fraction: float = Field(0.01, gt=0, lt=1)  # poisons (perturbed target-class rows) as a share of the train set
    epsilon: float = Field(16.0, gt=0, le=255)  # L-inf budget of the poisons, pixel units (the paper: 16/255)
    patch_size: int = Field(4, ge=1)  # side of the square trigger patch, pixels (the paper: 8 on CIFAR's 32)
    steps: int = Field(250, ge=1)  # signed-Adam steps in all, split evenly over the retraining rounds
    step_size: float = Field(0.1, gt=0)  # Adam learning rate, in units of epsilon
    retrain_rounds: int = Field(4, ge=0)  # times the surrogate is retrained on the current poisons (the paper: 4)
    source_batch: int = Field(128, ge=1)  # patched source images in the backdoor gradient
    surrogate: ClassifierConfig = ClassifierConfig(epochs=8)  # the attacker's model, trained from scratch
    surrogate_seed: int = 0  # seed of the first surrogate; retraining round r uses surrogate_seed + r
    snapshot_epochs: list[int] = []  # surrogate epochs also aligned at (genlab.attacks.gradient_alignment)

    @model_validator(mode="after")
    def _snapshots_within_training(self) -> "SleeperAgentConfig":
        alignment_epochs(self.snapshot_epochs, self.surrogate.epochs)
        return self


def largest_gradient_rows(model: nn.Module, train: ImageSet, target_class: int, count: int) -> np.ndarray:
    """Return sorted int64 indices of the `count` target-class rows with the largest parameter-gradient norm."""
    candidates = np.flatnonzero(train.labels == target_class)
    if count > len(candidates):
        raise ValueError(f"{count} poisons need {count} rows of class {target_class}, only {len(candidates)} exist")
    device = model_device(model)
    labels = torch.tensor([target_class], device=device)
    norms = [torch.sqrt(sum(g.pow(2).sum() for g in parameter_gradient(
        model, to_tensor(train.images[[row]], PIXEL, device), labels, create_graph=False))).item() for row in candidates]
    return np.sort(candidates[np.argsort(norms)[::-1][:count]]).astype(np.int64)


def craft_sleeper_agent(cfg: SleeperAgentConfig, train: ImageSet, seed: int,
                        progress: Progress | None = None) -> PoisonSet:
    """Return the Sleeper Agent PoisonSet for `train`: target-class rows within `cfg.epsilon` pixels, true
    labels, and the patch trigger that activates the backdoor at test time."""
    if cfg.target_class >= len(train.classes):
        raise ValueError(f"target_class {cfg.target_class} is not one of the {len(train.classes)} classes")
    progress = progress or print_progress
    epochs = alignment_epochs(cfg.snapshot_epochs, cfg.surrogate.epochs)
    models = surrogate_snapshots(train, cfg.surrogate, cfg.surrogate_seed, epochs)
    device = model_device(models[0])
    count = max(1, int(round(cfg.poison_fraction * len(train))))
    rows = largest_gradient_rows(models[-1], train, cfg.target_class, count)
    trigger = random_patch_trigger(train.shape, cfg.patch_size, seed)
    generator = torch.Generator().manual_seed(seed)
    sources = train.images[train.labels != cfg.target_class]
    patched = to_tensor(trigger.apply(sources[torch.randperm(len(sources), generator=generator)[:cfg.source_batch].numpy()]),
                        PIXEL, device)
    bases = to_tensor(train.images[rows], PIXEL, device)
    labels = torch.full((len(rows),), cfg.target_class, device=device)
    delta = (random_start(bases, cfg.epsilon, generator) - bases).requires_grad_(True)
    rounds = cfg.retrain_rounds + 1
    for round_ in range(rounds):
        goals = goal_gradients(models, patched, torch.full((len(patched),), cfg.target_class, device=device))
        loss = projected_adam(delta, bases, cfg.epsilon,
                              partial(ensemble_alignment_loss, models, goals, labels=labels, create_graph=True),
                              steps=max(1, cfg.steps // rounds), lr=cfg.step_size * cfg.epsilon, schedule="milestones",
                              offset=True, signed=True)
        progress(f"sleeper_agent round {round_ + 1}/{rounds}: alignment loss {loss.item():.4f}")
        if round_ < cfg.retrain_rounds:
            poisoned = train.replace_rows(rows, quantize_within(train.images[rows], bases + delta.detach(), cfg.epsilon),
                                          train.labels[rows])
            models = surrogate_snapshots(poisoned, cfg.surrogate, cfg.surrogate_seed + round_ + 1, epochs)
    images = quantize_within(train.images[rows], bases + delta.detach(), cfg.epsilon)
    return PoisonSet(base_indices=rows, images=images, labels=train.labels[rows].copy(), attack="sleeper_agent",
                     kind="backdoor", dataset_hash=train.hash, seed=seed, config=cfg.model_dump(mode="json"),
                     target_class=cfg.target_class, epsilon=cfg.epsilon, trigger=trigger)
