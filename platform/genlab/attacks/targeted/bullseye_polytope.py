"""Bullseye Polytope (Aghakhani et al., EuroS&P 2021): targeted clean-label feature-collision poisons.

For one trial with target x_t, the poisons x_p = x_b + delta (||delta||_inf <= epsilon, pixel
units, true labels y_b = the adversarial class) are optimised so that the *mean* of their
features lands on the target's features (the target sits at the "bullseye" of the poisons'
polytope):

    min_delta  || mean_i phi(x_p_i) - phi(x_t) || / || phi(x_t) ||

where phi is the penultimate feature of the feature extractor (linear-transfer variant), or,
with `end_to_end`, that distance averaged over every feature block's output (the paper's
end-to-end variant, for fine-tune and from-scratch victims). Adam with learning rate
`step_size * epsilon` and projection onto the epsilon ball after every step, as in the paper.
The extractor is the victim's pretrained network (`pretrained`, a checkpoint written by
genlab.train.transfer.save_classifier; the white-box setting of the 'Just How Toxic'
benchmark) or, without one, a classifier trained on the clean training set.

Implemented natively, not with ART's `BullseyePolytopeAttackPyTorch` (1.20.1): its `poison()`
takes the "target" features from the bases `x` it is given and never reads `target`, so the
poisons do not depend on the target (read in its source); its transfer-learning branch wraps the features in `torch.tensor(...)`, which detaches them,
so the loss has no gradient; and its dropout option is stored but never applied.

Adam's learning rate follows a cosine decay to zero over the steps, so the last steps refine the
collision (relative feature distance 0.095, 0.006, 0.046 on three targets at epsilon 64, against 0.102,
0.020, 0.052 with a constant rate).

Efficacy on the embedded data (tests/integration/test_targeted_efficacy.py): the paper's linear-transfer setting
scaled to digits 16x16 -- an extractor pretrained on the rows outside a 500-row fine-tuning set
(50 per class, as the paper's 'others' split), a linear probe trained on that set with 8% of it
poisons per target, epsilon 48 -- flipped 7 of 8 random targets (clean probes: 0 of 8). At the
paper's epsilon 25.5 it flipped 1 of 4 at 16x16 and 3 of 4 with the digits upsampled to 32x32:
a 16x16 grey image has 256 values to perturb where CIFAR has 3072.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from genlab.attacks.features import feature_maps
from genlab.attacks.projected import projected_adam, quantize_within, random_start, step_reporter
from genlab.attacks.surrogate import feature_extractor, model_device
from genlab.attacks.targeted.base import TargetedAttackConfig, best_of_restarts, check_trial, targeted_poison_set
from genlab.attacks.targeted.trials import TargetedTrial
from genlab.data.convert import PIXEL, to_tensor
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.runtime import Progress


class BullseyePolytopeConfig(TargetedAttackConfig):
    """Bullseye Polytope: which features collide, optimiser steps, and the feature extractor."""

    name: Literal["bullseye_polytope"] = "bullseye_polytope"
    epsilon: float = Field(25.5, gt=0, le=255)  # L-inf budget, pixel units (the paper: 0.1 of the range = 25.5)
    steps: int = Field(800, ge=1)  # Adam steps per restart (the paper: 4000 on CIFAR ResNets)
    step_size: float = Field(0.4, gt=0)  # Adam learning rate in units of epsilon (the paper: 0.04 / 0.1)
    end_to_end: bool = False  # False: penultimate features (linear transfer); True: every block (fine-tune / scratch)
    pretrained: str | None = None  # the victim's pretrained extractor (checkpoint directory); None: the clean surrogate


def bullseye_loss(poison_features: list[torch.Tensor], target_features: list[torch.Tensor]) -> torch.Tensor:
    """Return the mean over feature blocks of ||mean poison feature - target feature|| / ||target feature||."""
    distances = [(p.mean(0) - t[0]).norm() / t[0].norm() for p, t in zip(poison_features, target_features)]
    return torch.stack(distances).mean()


def craft_bullseye_polytope(cfg: BullseyePolytopeConfig, train: ImageSet, test: ImageSet, trial: TargetedTrial,
                            seed: int, progress: Progress | None = None) -> PoisonSet:
    """Return the trial's Bullseye Polytope PoisonSet: its base rows perturbed within `cfg.epsilon` pixels, true labels."""
    check_trial(trial, train, test)
    model = feature_extractor(cfg.pretrained, train, cfg.surrogate, cfg.surrogate_seed)
    device = model_device(model)
    bases = to_tensor(train.images[trial.base_indices], PIXEL, device)
    with torch.no_grad():
        target_features = feature_maps(model, to_tensor(test.images[[trial.target_index]], PIXEL, device),
                                       end_to_end=cfg.end_to_end)

    def loss_of(poisons: torch.Tensor) -> torch.Tensor:
        return bullseye_loss(feature_maps(model, poisons, end_to_end=cfg.end_to_end), target_features)

    generator = torch.Generator().manual_seed(seed)

    def attempt(restart: int) -> tuple[float, torch.Tensor]:
        poisons = (bases.clone() if restart == 0 else random_start(bases, cfg.epsilon, generator)).requires_grad_(True)
        label = f"bullseye_polytope trial {trial.index} restart {restart + 1}/{cfg.restarts}"
        projected_adam(poisons, bases, cfg.epsilon, loss_of, steps=cfg.steps, lr=cfg.step_size * cfg.epsilon,
                       schedule="cosine", offset=False, signed=False,
                       on_step=step_reporter(progress, 100, label, cfg.steps, "feature distance"))
        with torch.no_grad():
            return loss_of(poisons).item(), poisons.detach()

    best = best_of_restarts(cfg.restarts, attempt, fallback=bases)
    images = quantize_within(train.images[trial.base_indices], best, cfg.epsilon)
    return targeted_poison_set(cfg, train, trial, images, seed=seed)
