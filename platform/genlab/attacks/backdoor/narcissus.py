"""Narcissus (Zeng et al. 2023): a clean-label backdoor whose trigger needs only the target class.

1. Surrogate: a classifier (`genlab.train.classifier.train_classifier`) trained on
   publicly available out-of-distribution data (POOD) plus the target class's training images
   as one extra class. On embedded data the POOD is the generated `shapes` dataset (default;
   for a `shapes` victim, set `pood: digits`), rendered at the victim's image size and
   converted to its channel count (grey = channel mean; grey to RGB = repeated).
2. Trigger: one additive pattern `delta` with |delta| <= epsilon (pixel units, L-inf), found by
   minimising the surrogate's cross-entropy of the target class on trigger-added POOD and
   target-class images (Adam on `delta`, projected back onto the budget after every step).
3. Poisons: `poison_fraction * len(train)` target-class training images (seeded choice),
   with the trigger added and their correct labels kept (clean-label).
4. Test time: the Narcissus paper multiplies the trigger by `test_magnitude` (3); the PoisonSet
   carries it. PureGen's tables score the trigger as crafted (x1), so the defense sweep reports
   x1 as the poison success and x3 beside it (`poison_success_rate_amplified`).

Defense-aware variants (`narcissus_ebm_aware`, `narcissus_ddpm_aware`; PureGen App. E.2.1): the
surrogate sees `transform(clip(x + delta))` in step 2, where `transform` is the defender's
purifier as a callable on float NCHW pixel tensors. attacks/ never imports purify/: the caller
builds it (`genlab.sweep.adaptive.aware`) and passes it in.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from genlab.attacks.backdoor.base import BackdoorAttackConfig, choose_target_rows
from genlab.attacks.surrogate import model_device
from genlab.data import DatasetConfig, load_dataset
from genlab.data.convert import PIXEL, match_format, to_tensor
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet, Trigger
from genlab.errors import ConfigError
from genlab.runtime import Progress, print_progress
from genlab.train.classifier import ClassifierConfig, train_classifier


class NarcissusConfig(BackdoorAttackConfig):
    """Narcissus: POOD source, surrogate, trigger budget and optimisation, test-time magnification."""

    name: Literal["narcissus"] = "narcissus"
    poison_fraction: float = Field(0.05, gt=0, lt=1)  # poisons (triggered target-class rows) as a share of the train set
    epsilon: float = Field(16.0, gt=0, le=255)  # L-inf budget of the trigger, pixel units (16 = the paper's 16/255)
    test_magnitude: float = Field(3.0, gt=0)  # the amplified test trigger (Narcissus paper: 3); the sweep's headline is x1
    pood: Literal["shapes", "digits"] = "shapes"  # out-of-distribution dataset of the surrogate (not the victim's)
    pood_samples_per_class: int = Field(60, ge=10)  # POOD images per class (shapes only)
    surrogate: ClassifierConfig = ClassifierConfig(epochs=6)  # the attacker's model on POOD + the target class
    surrogate_seed: int = 0  # seed of the surrogate's training
    trigger_steps: int = Field(200, ge=1)  # Adam steps on the trigger
    trigger_lr: float = Field(1.0, gt=0)  # Adam learning rate, pixel units per step
    trigger_batch_size: int = Field(128, ge=1)  # POOD + target images per step
    progress_every: int = Field(100, ge=1)  # a progress line every this many steps


class NarcissusAwareConfig(NarcissusConfig):
    """Narcissus whose trigger optimisation sees the defender's purifier (PureGen Table 11: EBM, 50 Langevin steps)."""

    name: Literal["narcissus_ebm_aware", "narcissus_ddpm_aware"] = "narcissus_ebm_aware"
    purifier_steps: int = Field(50, ge=1)  # Langevin steps (ebm) or t* (ddpm) of the purifier inside the optimisation
    gradient: Literal["full", "bpda"] = "full"  # through the purifier's chain, or BPDA (identity backward)
    purifier_checkpoint: str | None = None  # the purifier's model; None = the sweep's own (provisioned) one


PixelTransform = Callable[[torch.Tensor], torch.Tensor]  # float NCHW pixels [0, 255] -> the same (e.g. a purifier)


def pood_set(cfg: NarcissusConfig, shape: tuple[int, int, int]) -> ImageSet:
    """Return the POOD training split (uint8 NHWC, its own labels) at the victim's image `shape` (H, W, C)."""
    pood, _ = load_dataset(DatasetConfig(name=cfg.pood, image_size=shape[0], samples_per_class=cfg.pood_samples_per_class))
    return ImageSet(match_format(pood.images, shape), pood.labels, pood.classes)


def train_surrogate(cfg: NarcissusConfig, train: ImageSet, pood: ImageSet) -> torch.nn.Module:
    """Return the surrogate (eval mode, frozen): the POOD classes plus the target class as the last class."""
    target = train.images[train.labels == cfg.target_class]
    images = np.concatenate([pood.images, target])
    labels = np.concatenate([pood.labels, np.full(len(target), len(pood.classes), dtype=np.int64)])
    model = train_classifier(images, labels, len(pood.classes) + 1, cfg.surrogate, seed=cfg.surrogate_seed)
    return model.eval().requires_grad_(False)


def optimise_trigger(cfg: NarcissusConfig, surrogate: torch.nn.Module, images: np.ndarray, target_index: int,
                     seed: int, progress: Progress, transform: PixelTransform | None = None) -> np.ndarray:
    """Return the trigger delta, float32 [H,W,C] in [-epsilon, epsilon] pixel units.

    Minimises the surrogate's cross-entropy of the target class (its class `target_index`) on
    `clip(x + delta, 0, 255)` over minibatches of `images` (POOD + target class), passed through
    `transform` first when one is given.
    """
    device = model_device(surrogate)
    data = to_tensor(images, PIXEL, device)
    generator = torch.Generator().manual_seed(seed)
    delta = torch.zeros((1, *data.shape[1:]), device=device, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=cfg.trigger_lr)
    target = torch.full((min(cfg.trigger_batch_size, len(data)),), target_index, dtype=torch.long, device=device)
    for step in range(1, cfg.trigger_steps + 1):
        index = torch.randperm(len(data), generator=generator)[:cfg.trigger_batch_size].to(device)
        triggered = (data[index] + delta).clamp(0, 255)
        loss = F.cross_entropy(surrogate(transform(triggered) if transform else triggered), target[:len(index)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            delta.clamp_(-cfg.epsilon, cfg.epsilon)
        if step % cfg.progress_every == 0 or step == cfg.trigger_steps:
            progress(f"narcissus trigger step {step}/{cfg.trigger_steps}: surrogate target loss {loss.item():.4f}")
    return delta.detach()[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)


def craft_narcissus(cfg: NarcissusConfig, train: ImageSet, seed: int, progress: Progress | None = None,
                    transform: PixelTransform | None = None) -> PoisonSet:
    """Return the Narcissus PoisonSet for `train`: clean-label triggered target-class rows within epsilon.

    `progress` receives one line per stage and per `progress_every` trigger steps (default: print).
    `transform` (the purifier) is required by the defense-aware configs and used in the trigger optimisation.
    """
    if isinstance(cfg, NarcissusAwareConfig) and transform is None:
        raise ConfigError(f"attack {cfg.name} needs the defender's purifier: list it in a defense sweep "
                          f"(jobs/defense_sweep.py or jobs/aware_poisons.py), which crafts it through its purifier")
    if cfg.target_class >= len(train.classes):
        raise ValueError(f"target_class {cfg.target_class} is not one of the {len(train.classes)} classes")
    progress = progress or print_progress
    pood = pood_set(cfg, train.shape)
    progress(f"narcissus surrogate: {len(pood)} POOD ({cfg.pood}) + target-class {cfg.target_class} images, "
             f"{cfg.surrogate.epochs} epochs")
    surrogate = train_surrogate(cfg, train, pood)
    target_images = train.images[train.labels == cfg.target_class]
    delta = optimise_trigger(cfg, surrogate, np.concatenate([pood.images, target_images]), len(pood.classes),
                             seed, progress, transform)
    h, w, c = train.shape
    trigger = Trigger(mask=np.zeros((h, w, 1), dtype=np.float32), pattern=np.zeros((h, w, c), dtype=np.uint8),
                      delta=delta)
    rows = choose_target_rows(train.labels, cfg.target_class, cfg.poison_fraction, seed)
    return PoisonSet(base_indices=rows, images=trigger.apply(train.images[rows]), labels=train.labels[rows].copy(),
                     attack=cfg.name, kind="backdoor", dataset_hash=train.hash, seed=seed,
                     config=cfg.model_dump(mode="json"), target_class=cfg.target_class, epsilon=cfg.epsilon,
                     trigger=trigger, test_magnitude=cfg.test_magnitude)
