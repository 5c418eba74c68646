"""Hidden Trigger Backdoor (Saha et al., AAAI 2020): a clean-label backdoor whose poisons never show
the trigger.

The poisons are target-class training rows x_b perturbed within an L-inf ball (`epsilon`, pixel
units) and kept correctly labelled. They are optimised so that, in the victim's feature space, they
sit on *patched* source images (source images with the secret trigger patch):

    min_delta  sum_k || phi(x_b_k + delta_k) - phi(s_a(k) + patch) ||^2 / ||phi(s_a(k) + patch)||^2

where every step draws a fresh batch of patched sources (one per poison) and pairs each poison
with a distinct source by minimum total distance (the paper's closest-pair assignment, solved
exactly with the Hungarian method). A victim that trains its head on the poisons learns "this
region of feature space is the target class", and at test time any patched source image lands
there. Sources are every non-target class (the paper uses one source class; every class is
what genlab's backdoor metric measures: triggered non-target test images classified as the
target class). The trigger is a seeded random uint8 patch in a fixed corner (the paper moves
it to a random place per image; the PoisonSet trigger format is a fixed mask).

phi is the penultimate feature of the victim's pretrained extractor (`pretrained`, a checkpoint
written by genlab.train.transfer.save_classifier: the paper's transfer-learning setting, where
the victim trains a linear head or fine-tunes) or, without one, a classifier trained on the clean
training set. Adam with a cosine-decayed learning rate `step_size * epsilon` and projection after
every step (genlab.attacks.projected), as genlab's Bullseye Polytope.

Efficacy on the embedded data (tests/integration/test_targeted_efficacy.py): digits 16x16, an extractor
pretrained on the rows outside a 500-row set, a linear probe trained on that set with 40 of its
class-0 rows poisoned (8%), 300 steps. Triggered non-target test images classified as class 0,
poisoned probe vs clean probe (natural accuracy 96.9% vs 97.2%):
- 6x6 patch: epsilon 32 51.7% vs 0% (50% in the test), epsilon 48 64.7%, epsilon 16 6.8%; fine-tuning the
  whole network instead of the probe: 46.4% at epsilon 32, 62.8% at 48;
- 4x4 patch: 9.3% at epsilon 48, 0.3% at 16 (a 4x4 patch barely moves the digits' features).

Implemented natively. ART's `HiddenTriggerBackdoor` was not evaluated: ART is not a genlab
dependency, since its Gradient Matching and Bullseye Polytope did not reproduce those methods on
our models (see their modules), and this loop shares genlab's extractor, projection and progress.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from scipy.optimize import linear_sum_assignment

from genlab.attacks.backdoor.base import BackdoorAttackConfig, choose_target_rows, random_patch_trigger
from genlab.attacks.features import feature_maps
from genlab.attacks.projected import projected_adam, quantize_within, step_reporter
from genlab.attacks.surrogate import feature_extractor, model_device
from genlab.data.convert import PIXEL, to_tensor
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.runtime import Progress, print_progress
from genlab.train.classifier import ClassifierConfig


class HiddenTriggerConfig(BackdoorAttackConfig):
    """Hidden Trigger Backdoor: the patch, the poisons' L-inf budget, the optimisation and the extractor."""

    name: Literal["hidden_trigger"] = "hidden_trigger"
    poison_fraction: float = Field(0.02, gt=0, lt=1)  # poisons (perturbed target-class rows) as a share of the train set
    epsilon: float = Field(16.0, gt=0, le=255)  # L-inf budget of the poisons, pixel units (the paper: 16/255)
    patch_size: int = Field(4, ge=1)  # side of the square trigger patch, pixels (the paper: 30 of 224, ~1/8 the side)
    steps: int = Field(500, ge=1)  # Adam steps (the paper: 5,000 per batch of 100 poisons on ImageNet AlexNet)
    step_size: float = Field(0.1, gt=0)  # Adam learning rate in units of epsilon
    pretrained: str | None = None  # the victim's pretrained extractor (checkpoint directory); None: a clean surrogate
    surrogate: ClassifierConfig = ClassifierConfig(epochs=8)  # the extractor when `pretrained` is None
    surrogate_seed: int = 0  # seed of that surrogate's training
    progress_every: int = Field(100, ge=1)  # a progress line every this many steps


def matched_feature_distance(poison_features: torch.Tensor, source_features: torch.Tensor) -> torch.Tensor:
    """Return the mean relative squared distance between each poison's features and its own source's, with
    poisons and sources paired one-to-one by minimum total distance (both [K, D]; result >= 0)."""
    distances = torch.cdist(poison_features, source_features).pow(2) / source_features.pow(2).sum(1)[None]
    rows, cols = linear_sum_assignment(distances.detach().cpu().numpy())
    return distances[torch.as_tensor(rows), torch.as_tensor(cols)].mean()


def craft_hidden_trigger(cfg: HiddenTriggerConfig, train: ImageSet, seed: int,
                         progress: Progress | None = None) -> PoisonSet:
    """Return the Hidden Trigger Backdoor PoisonSet for `train`: target-class rows within `cfg.epsilon` pixels,
    true labels, and the patch trigger that activates the backdoor at test time."""
    if cfg.target_class >= len(train.classes):
        raise ValueError(f"target_class {cfg.target_class} is not one of the {len(train.classes)} classes")
    progress = progress or print_progress
    trigger = random_patch_trigger(train.shape, cfg.patch_size, seed)  # refuses a patch larger than the image
    extractor = feature_extractor(cfg.pretrained, train, cfg.surrogate, cfg.surrogate_seed)
    device = model_device(extractor)
    rows = choose_target_rows(train.labels, cfg.target_class, cfg.poison_fraction, seed)
    sources = to_tensor(trigger.apply(train.images[train.labels != cfg.target_class]), PIXEL, device)
    bases = to_tensor(train.images[rows], PIXEL, device)
    generator = torch.Generator().manual_seed(seed)

    def loss_of(poisons: torch.Tensor) -> torch.Tensor:
        """A fresh batch of patched sources, one per poison, paired with the poisons by feature distance."""
        batch = sources[torch.randperm(len(sources), generator=generator)[:len(rows)].to(device)]
        with torch.no_grad():
            (source_features,) = feature_maps(extractor, batch, end_to_end=False)
        (poison_features,) = feature_maps(extractor, poisons, end_to_end=False)
        return matched_feature_distance(poison_features, source_features)

    progress(f"hidden_trigger: {len(rows)} poisons of class {cfg.target_class} against {len(sources)} patched "
             f"sources, {cfg.steps} steps")
    poisons = bases.clone().requires_grad_(True)
    projected_adam(poisons, bases, cfg.epsilon, loss_of, steps=cfg.steps, lr=cfg.step_size * cfg.epsilon,
                   schedule="cosine", offset=False, signed=False,
                   on_step=step_reporter(progress, cfg.progress_every, "hidden_trigger", cfg.steps, "feature distance"))
    images = quantize_within(train.images[rows], poisons.detach(), cfg.epsilon)
    return PoisonSet(base_indices=rows, images=images, labels=train.labels[rows].copy(), attack="hidden_trigger",
                     kind="backdoor", dataset_hash=train.hash, seed=seed, config=cfg.model_dump(mode="json"),
                     target_class=cfg.target_class, epsilon=cfg.epsilon, trigger=trigger)
