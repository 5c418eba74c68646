"""What every targeted (triggerless, clean-label) attack shares: its config fields, checking a trial
against the data, the attacker's choice of adversarial class, and one trial's PoisonSet."""

from __future__ import annotations

from typing import Annotated, Callable, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from genlab.attacks.surrogate import model_device
from genlab.attacks.targeted.trials import TargetedTrial
from genlab.config import StrictModel
from genlab.data.convert import PIXEL, to_tensor
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.train.classifier import ClassifierConfig


class TargetedAttackConfig(StrictModel):
    """Fields every targeted attack has: the trials protocol, the L-inf budget and the attacker's surrogate."""

    trials: int = Field(4, ge=1)  # number of targets (one trial each), as fixed by genlab.attacks.targeted.trials
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


@torch.no_grad()
def runner_up_classes(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return int64 [N]: for each uint8 NHWC image, the class `model` scores highest after its true label."""
    logits = torch.cat([model(to_tensor(images[start:start + 512], PIXEL, model_device(model)))
                        for start in range(0, len(images), 512)]).cpu()
    logits[torch.arange(len(labels)), torch.as_tensor(labels)] = -torch.inf
    return logits.argmax(dim=1).numpy().astype(np.int64)


def best_of_restarts(restarts: int, attempt: Callable[[int], tuple[float, torch.Tensor]],
                     fallback: torch.Tensor) -> torch.Tensor:
    """Return the poisons of the attempt (`attempt(restart)` -> (final attack loss, poisons), restart 0..restarts-1)
    with the lowest loss; `fallback` if no loss is below infinity."""
    best_loss, best = float("inf"), fallback
    for restart in range(restarts):
        loss, poisons = attempt(restart)
        if loss < best_loss:
            best_loss, best = loss, poisons
    return best


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
