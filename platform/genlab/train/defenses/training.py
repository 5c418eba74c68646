"""One classifier trained under a defense: the entry point the sweep's trial calls.

- FrieNDs and EPIC change the training itself (a `TrainingDefense` of train_classifier).
- Activation clustering and spectral signatures train a classifier on the given rows (the same
  config and seed), flag rows from its last hidden layer, drop them and train the reported
  classifier afresh on the rest.
`DefenseStatus` tells the caller, while the reported classifier trains, what the defense cost in
seconds (its work beyond one plain training) and which rows it dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from genlab.models.classifiers import NormalizedClassifier
from genlab.runtime import seeded_generator
from genlab.train.classifier import ClassifierConfig, EpochCallback, train_classifier
from genlab.train.defenses.epic import EpicTraining
from genlab.train.defenses.filters import activation_clustering_flags, penultimate_features, spectral_signature_flags
from genlab.train.defenses.friendly_noise import FriendlyNoiseTraining
from genlab.train.defenses.settings import (
    ActivationClusteringSettings,
    DefenseSettings,
    EpicSettings,
    FriendlyNoiseSettings,
    SpectralSignaturesSettings,
)


@dataclass
class DefenseStatus:
    """What a defense has done so far: seconds it cost, and its dropped rows (bool mask [N]; None: drops none)."""

    cost_s: float = 0.0
    dropped: np.ndarray | None = None


def train_defended(images: np.ndarray, labels: np.ndarray, num_classes: int, cfg: ClassifierConfig,
                   settings: DefenseSettings, *, seed: int, status: DefenseStatus,
                   on_epoch: EpochCallback | None = None) -> NormalizedClassifier:
    """Train a classifier on uint8 NHWC `images` under the defense `settings`; return it in eval mode.

    `status` is updated as the defense works (read it from `on_epoch`); `on_epoch` sees the
    reported classifier's epochs only (a filter's first, flagging classifier reports nothing).
    """
    if isinstance(settings, (ActivationClusteringSettings, SpectralSignaturesSettings)):
        started = time.perf_counter()
        status.dropped = filter_rows(images, labels, num_classes, cfg, settings, seed=seed)
        status.cost_s = time.perf_counter() - started
        keep = ~status.dropped
        return train_classifier(images[keep], labels[keep], num_classes, cfg, seed=seed, on_epoch=on_epoch)
    if isinstance(settings, EpicSettings):
        defense = EpicTraining(settings, num_classes=num_classes)
    elif isinstance(settings, FriendlyNoiseSettings):
        defense = FriendlyNoiseTraining(settings, generator=seeded_generator("friendly-noise", seed))
    else:
        raise ValueError(f"unknown defense {settings.name!r}")

    def report(epoch: int, loss: float, model: torch.nn.Module) -> None:
        status.cost_s = defense.cost_s
        status.dropped = getattr(defense, "dropped", None)
        if on_epoch is not None:
            on_epoch(epoch, loss, model)

    return train_classifier(images, labels, num_classes, cfg, seed=seed, on_epoch=report, defense=defense)


def filter_rows(images: np.ndarray, labels: np.ndarray, num_classes: int, cfg: ClassifierConfig,
                settings: ActivationClusteringSettings | SpectralSignaturesSettings, *, seed: int) -> np.ndarray:
    """Return the rows a filtering defense flags (bool mask [N]), from a classifier trained on all rows."""
    model = train_classifier(images, labels, num_classes, cfg, seed=seed)
    features = penultimate_features(model, images)
    if isinstance(settings, ActivationClusteringSettings):
        return activation_clustering_flags(features, labels, settings, seed=seed)
    return spectral_signature_flags(features, labels, settings)


def detection_scores(dropped: np.ndarray, poisoned_rows: np.ndarray) -> dict[str, float]:
    """Return `rows_dropped` and, against the known poisoned row indices, `detection_recall` (share of poisoned
    rows dropped) and `detection_precision` (share of dropped rows that were poisoned; absent if none dropped)."""
    poisoned = np.zeros(len(dropped), dtype=bool)
    poisoned[poisoned_rows] = True
    hits = int((dropped & poisoned).sum())
    scores = {"rows_dropped": float(dropped.sum())}
    if poisoned.any():
        scores["detection_recall"] = hits / int(poisoned.sum())
    if dropped.any():
        scores["detection_precision"] = hits / int(dropped.sum())
    return scores
