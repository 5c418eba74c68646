"""The filtering defenses: flag suspicious training rows from a classifier's last hidden layer.

- Activation clustering (Chen et al. 2018): per class, the activations are reduced to `dimensions`
  components (FastICA, as the paper; or PCA) and split by 2-means; the smaller cluster is flagged
  when its share of the class is at most `size_threshold` (`relative_size`) or when the split's
  silhouette score exceeds `silhouette_threshold` (`silhouette`: the two clusters are well apart).
- Spectral signatures (Tran et al. 2018): per class, with R the representations centred on the
  class mean and v R's top right singular vector, row i scores (R_i . v)^2; the
  round(removal_factor * eps * n_c) highest scores are flagged.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import silhouette_score
from torch import nn

from genlab.data.convert import PIXEL, to_tensor
from genlab.models.classifiers import head_name
from genlab.train.defenses.settings import ActivationClusteringSettings, SpectralSignaturesSettings


@torch.no_grad()
def penultimate_features(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Return the input of the classifier's linear head (its last hidden layer) per image: float32 [N, D].

    `model` is a genlab.models.classifiers.NormalizedClassifier; `images` uint8 NHWC.
    """
    model.eval()
    head = getattr(model.net, head_name(model.net))
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _module, inputs, _output: captured.append(inputs[0].float().cpu()))
    device = next(model.parameters()).device
    try:
        for start in range(0, len(images), batch_size):
            model(to_tensor(images[start:start + batch_size], PIXEL, device))
    finally:
        hook.remove()
    return torch.cat(captured).numpy() if captured else np.zeros((0, head.in_features), dtype=np.float32)


def activation_clustering_flags(features: np.ndarray, labels: np.ndarray, settings: ActivationClusteringSettings, *,
                                seed: int) -> np.ndarray:
    """Return a bool mask [N]: True for the rows in a class's flagged (smaller) activation cluster."""
    flagged = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 4:
            continue  # too few rows to split in two
        reduced = _reduce(features[rows], settings, seed)
        clusters = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(reduced)
        sizes = np.bincount(clusters, minlength=2)
        smaller = int(np.argmin(sizes))
        if settings.analyzer == "relative_size":
            poisoned = sizes[smaller] / len(rows) <= settings.size_threshold
        else:
            poisoned = sizes.min() > 0 and silhouette_score(reduced, clusters) > settings.silhouette_threshold
        if poisoned:
            flagged[rows[clusters == smaller]] = True
    return flagged


def _reduce(activations: np.ndarray, settings: ActivationClusteringSettings, seed: int) -> np.ndarray:
    """Return the activations of one class reduced to at most `settings.dimensions` components."""
    components = max(1, min(settings.dimensions, activations.shape[1], len(activations) - 1))
    if settings.reduction == "pca":
        return PCA(n_components=components, random_state=seed).fit_transform(activations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return FastICA(n_components=components, whiten="unit-variance", random_state=seed,
                       max_iter=400).fit_transform(activations)


def spectral_signature_scores(features: np.ndarray) -> np.ndarray:
    """Return each row's outlier score (R_i . v)^2 within one class (float [n], >= 0)."""
    centred = features - features.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2


def spectral_signature_flags(features: np.ndarray, labels: np.ndarray,
                             settings: SpectralSignaturesSettings) -> np.ndarray:
    """Return a bool mask [N]: True for the round(factor * eps * n_c) highest-scoring rows of every class."""
    flagged = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        count = min(len(rows), int(round(settings.removal_factor * settings.poison_fraction_bound * len(rows))))
        if count == 0 or len(rows) < 2:
            continue
        scores = spectral_signature_scores(features[rows].astype(np.float64))
        flagged[rows[np.argsort(scores, kind="stable")[len(rows) - count:]]] = True
    return flagged
