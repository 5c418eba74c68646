"""What one sweep trial trains: a plain classifier on a purified set, or one under a defense
(genlab.train.defenses), and the cost and detection metrics it adds to every epoch's report."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from pydantic import TypeAdapter

from genlab.train.classifier import ClassifierConfig, train_classifier
from genlab.train.defenses import DefenseConfig, DefenseStatus, detection_scores, train_defended

TrialReport = Callable[[int, float, torch.nn.Module, dict[str, float]], None]
_DEFENSE = TypeAdapter(DefenseConfig)


def train_trial_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, cfg: ClassifierConfig,
                           defense: dict[str, Any] | None, *, seed: int, purify_images_per_s: float | None,
                           poisoned_rows: np.ndarray, on_epoch: TrialReport, resume: dict[str, Any] | None = None,
                           on_state: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Train the trial's classifier; after every epoch call `on_epoch(epoch, loss, model, extra metrics)`.

    A plain trial hands its training state to `on_state` and goes on from `resume` (genlab.train.classifier);
    a defense trial does neither and restarts from epoch 1 (its state, EPIC's subset or FrieNDs' noise, is
    not in the checkpoint).

    Extra metrics: `cost_s`, the seconds the defense took beyond one plain training (for a
    purifier: its training set's size over its measured images/s; 0 for none), and for a defense
    that drops rows, `rows_dropped`, `detection_precision` and `detection_recall` against
    `poisoned_rows` (the attack's rows in the training set).
    """
    if defense is None:
        cost = {"cost_s": 0.0 if not purify_images_per_s else len(images) / purify_images_per_s}
        train_classifier(images, labels, num_classes, cfg, seed=seed, resume=resume, on_state=on_state,
                         on_epoch=lambda epoch, loss, model: on_epoch(epoch, loss, model, cost))
        return
    status = DefenseStatus()

    def report(epoch: int, loss: float, model: torch.nn.Module) -> None:
        extra = {"cost_s": status.cost_s}
        if status.dropped is not None:
            extra.update(detection_scores(status.dropped, poisoned_rows))
        on_epoch(epoch, loss, model, extra)

    train_defended(images, labels, num_classes, cfg, _DEFENSE.validate_python(defense), seed=seed, status=status,
                   on_epoch=report)
