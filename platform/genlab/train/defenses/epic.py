"""EPIC (Yang et al. 2022, "Not All Poisons are Created Equal"), a training-time defense of
`genlab.train.classifier.train_classifier`: effective poisons sit isolated in gradient space, so
every few epochs the rows that no coreset medoid shares are dropped from training.

A selection (the authors' "coreset-pred" setting): each row's gradient estimate is the loss
gradient at the logits, softmax(f(x)) - onehot(y); per class, greedy facility location
(genlab.train.defenses.facility_location, euclidean) picks ceil(subset_fraction * n_c) medoids; every
row joins its most similar medoid; rows in clusters of at most `cluster_threshold` rows are
dropped, the rest (medoids and their members) train until the next selection.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab.train.defenses.facility_location import euclidean_similarity, greedy_facility_location
from genlab.train.defenses.settings import EpicSettings


@torch.no_grad()
def gradient_estimates(model: nn.Module, data: torch.Tensor, targets: torch.Tensor, num_classes: int,
                       batch_size: int = 512) -> torch.Tensor:
    """Return softmax(f(x)) - onehot(y) per row (float [N, num_classes], entries in [-1, 1])."""
    model.eval()
    probs = torch.cat([F.softmax(model(data[i:i + batch_size]).float(), dim=1)
                       for i in range(0, len(data), batch_size)])
    return probs - F.one_hot(targets, num_classes).float()


def isolated_rows(gradients: torch.Tensor, labels: torch.Tensor, settings: EpicSettings) -> torch.Tensor:
    """Return a bool mask [N]: True for the rows EPIC drops (clusters of at most `cluster_threshold` rows)."""
    dropped = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    for label in torch.unique(labels):
        rows = torch.nonzero(labels == label).flatten()
        similarity = euclidean_similarity(gradients[rows])
        medoids, _ = greedy_facility_location(similarity, math.ceil(settings.subset_fraction * len(rows)))
        cluster = similarity[:, medoids.to(similarity.device)].argmax(dim=1)
        sizes = torch.bincount(cluster, minlength=len(medoids))
        dropped[rows] = sizes[cluster] <= settings.cluster_threshold
    return dropped


class EpicTraining:
    """The TrainingDefense of EPIC: all rows until `start_epoch`, then a new selection every `every` epochs.

    `dropped` (bool numpy mask, or None before the first selection) holds the latest selection's
    dropped rows; `cost_s` the seconds spent selecting.
    """

    def __init__(self, settings: EpicSettings, *, num_classes: int) -> None:
        self.settings, self.num_classes = settings, num_classes
        self.rows: torch.Tensor | None = None
        self.dropped: np.ndarray | None = None
        self.cost_s = 0.0

    def epoch_rows(self, epoch: int, model: nn.Module, data: torch.Tensor,
                   targets: torch.Tensor) -> torch.Tensor | None:
        """Return the rows to train on in `epoch` (1-based): None (all) up to `start_epoch`, then the selection."""
        since = epoch - 1 - self.settings.start_epoch
        if since < 0:
            return None
        if since % self.settings.every == 0:
            started = time.perf_counter()
            dropped = isolated_rows(gradient_estimates(model, data, targets, self.num_classes), targets, self.settings)
            self.rows = torch.nonzero(~dropped).flatten()
            self.dropped = dropped.cpu().numpy()
            self.cost_s += time.perf_counter() - started
        return self.rows

    def batch(self, batch: torch.Tensor, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the batch unchanged (EPIC chooses rows, not pixels)."""
        return batch
