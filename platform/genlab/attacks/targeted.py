"""What every targeted (triggerless, clean-label) attack shares: its config fields, the attacker's
surrogate classifier, and turning optimised float poisons into a PoisonSet within the budget."""

from __future__ import annotations

import copy
from typing import Annotated, Callable, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from genlab.attacks.poisonset import PoisonSet
from genlab.attacks.trials import TargetedTrial
from genlab.config import StrictModel
from genlab.data.imageset import ImageSet
from genlab.runtime import resolve_device
from genlab.train.classifier import ClassifierConfig, train_classifier

Progress = Callable[[str], None]


class TargetedAttackConfig(StrictModel):
    """Fields every targeted attack has: the trials protocol, the L-inf budget and the attacker's surrogate."""

    trials: int = Field(4, ge=1)  # number of targets (one trial each), as fixed by genlab.attacks.trials
    budget: float = Field(0.01, gt=0, lt=1)  # poisons per trial as a share of the training set
    epsilon: float = Field(16.0, gt=0, le=255)  # L-inf budget, pixel units (0..255)
    # shared class so trials merge into one set; None: random per trial; runner_up: the surrogate's second choice
    # for the target (per trial, the class the attacker can reach most easily)
    adversarial_class: Annotated[int, Field(ge=0)] | Literal["runner_up"] | None = None
    surrogate: ClassifierConfig = ClassifierConfig(epochs=8)  # the attacker's model, trained on the clean train set
    surrogate_seed: int = 0  # seed of the surrogate's training (shared by every trial)
    restarts: int = Field(1, ge=1)  # independent optimisations per trial; the lowest attack loss wins

    @property
    def key(self) -> str:
        """Return the name this attack goes by in tables and run names."""
        return self.name  # type: ignore[attr-defined]


_SURROGATES: dict[tuple[str, str, int, tuple[int, ...]], list[nn.Module]] = {}


def surrogate_snapshots(train: ImageSet, cfg: ClassifierConfig, seed: int, epochs: tuple[int, ...]) -> list[nn.Module]:
    """Return copies (eval mode) of one surrogate trained on the clean `train` set, taken after each of
    `epochs` (1..cfg.epochs, ascending), memoised per process so every trial of an attack shares them."""
    key = (train.hash, cfg.model_dump_json(), seed, epochs)
    if key not in _SURROGATES:
        _SURROGATES.clear()
        snapshots: list[nn.Module] = []

        def keep(epoch: int, _loss: float, model: nn.Module) -> None:
            if epoch in epochs:
                snapshots.append(copy.deepcopy(model).eval())

        train_classifier(train.images, train.labels, len(train.classes), cfg, seed=seed, on_epoch=keep)
        _SURROGATES[key] = snapshots
    return _SURROGATES[key]


def clean_surrogate(train: ImageSet, cfg: ClassifierConfig, seed: int) -> nn.Module:
    """Return a classifier fully trained on the clean `train` set (eval mode), memoised per process."""
    return surrogate_snapshots(train, cfg, seed, (cfg.epochs,))[0]


@torch.no_grad()
def runner_up_classes(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return int64 [N]: for each uint8 NHWC image, the class `model` scores highest after its true label."""
    logits = torch.cat([model(nchw(images[start:start + 512], model_device(model)))
                        for start in range(0, len(images), 512)]).cpu()
    logits[torch.arange(len(labels)), torch.as_tensor(labels)] = -torch.inf
    return logits.argmax(dim=1).numpy().astype(np.int64)


def model_device(model: nn.Module) -> torch.device:
    """Return the device the model's weights live on."""
    return next(model.parameters()).device


def nchw(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return uint8 NHWC images as float32 NCHW in [0, 255] on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()


def quantize_within(bases: np.ndarray, perturbed: torch.Tensor, epsilon: float) -> np.ndarray:
    """Return uint8 NHWC poisons: `perturbed` (float NCHW, pixel units) rounded, kept within
    floor(epsilon) of the uint8 NHWC `bases` and within [0, 255]."""
    bound = float(np.floor(epsilon))
    rounded = perturbed.detach().cpu().permute(0, 2, 3, 1).round().numpy()
    base = bases.astype(np.float32)
    return np.clip(np.clip(rounded, base - bound, base + bound), 0, 255).astype(np.uint8)


def project(poisons: torch.Tensor, bases: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Return `poisons` projected onto the L-inf ball of radius `epsilon` around `bases`, inside [0, 255]."""
    return torch.maximum(torch.minimum(poisons, bases + epsilon), bases - epsilon).clamp(0, 255)


def check_trial(trial: TargetedTrial, train: ImageSet, test: ImageSet) -> None:
    """Raise ValueError if `trial` does not fit `train`/`test` (row ranges, base labels, target label)."""
    if not 0 <= trial.target_index < len(test) or int(test.labels[trial.target_index]) != trial.target_label:
        raise ValueError(f"trial {trial.index}: target row {trial.target_index} is not a test image of label {trial.target_label}")
    if trial.base_indices.max() >= len(train) or np.any(train.labels[trial.base_indices] != trial.adversarial_class):
        raise ValueError(f"trial {trial.index}: base rows must be training images of class {trial.adversarial_class}")


def targeted_poison_set(cfg: TargetedAttackConfig, train: ImageSet, trial: TargetedTrial, poisons: np.ndarray, *,
                        seed: int) -> PoisonSet:
    """Return the clean-label targeted PoisonSet of one trial (labels = the bases' own, the adversarial class)."""
    return PoisonSet(base_indices=trial.base_indices, images=poisons, labels=train.labels[trial.base_indices].copy(),
                     attack=cfg.name, kind="targeted", dataset_hash=train.hash, seed=seed,  # type: ignore[attr-defined]
                     config=cfg.model_dump(mode="json"), target_class=trial.adversarial_class,
                     target_test_indices=[trial.target_index], epsilon=cfg.epsilon)


def attack_device(cfg: TargetedAttackConfig) -> torch.device:
    """Return the device crafting runs on (the surrogate's device setting)."""
    return resolve_device(cfg.surrogate.device)
