"""The defenses PureGen is compared with (genlab.train.defenses): each one's defining behaviour on small data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from genlab.config import load_config
from genlab.errors import ConfigError
from genlab.models.classifiers import NormalizedClassifier, build_classifier
from genlab.sweep.config import SweepConfig
from genlab.train.classifier import ClassifierConfig
from genlab.train.defenses import (
    ActivationClusteringSettings,
    DefenseStatus,
    EpicSettings,
    FriendlyNoiseSettings,
    SpectralSignaturesSettings,
    detection_scores,
    train_defended,
)
from genlab.train.defenses.epic import EpicTraining, isolated_rows
from genlab.train.defenses.facility_location import (
    euclidean_similarity,
    facility_location_value,
    greedy_facility_location,
)
from genlab.train.defenses.filters import activation_clustering_flags, penultimate_features, spectral_signature_flags
from genlab.train.defenses.friendly_noise import FriendlyNoiseTraining, friendly_noise
from tests.helpers import REPO


def _linear_model(seed: int = 0) -> nn.Module:
    """A fixed linear classifier of 1x8x8 pixel images (0..255)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    with torch.no_grad():
        model[1].weight.mul_(0.2)
    return model


def _template_task() -> tuple[nn.Module, torch.Tensor]:
    """A template-matching linear classifier and 64 noisy 1x8x8 images of its 4 templates (narrow margins)."""
    generator = torch.Generator().manual_seed(0)
    templates = 128 + 12 * torch.randn(4, 64, generator=generator)
    images = templates[torch.arange(64) % 4] + 12 * torch.randn(64, 64, generator=generator)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    with torch.no_grad():
        model[1].weight.copy_((templates - templates.mean(0)) * 0.05)
        model[1].bias.zero_()
    return model, images.clamp(0, 255).view(64, 1, 8, 8)


def test_friendly_noise_stays_within_budget_is_large_and_keeps_predictions():
    model, data = _template_task()
    settings = FriendlyNoiseSettings(budget=16, steps=20, batch_size=32)  # the paper's budget, lr and steps
    noise = friendly_noise(model, data, settings, generator=torch.Generator().manual_seed(2))
    assert noise.shape == data.shape
    assert float(noise.abs().max()) <= 16 + 1e-4
    assert float(noise.abs().mean()) > 12  # pushed towards the budget, far from its U(-8, 8) start
    signs = (torch.rand(data.shape, generator=torch.Generator().manual_seed(3)) < 0.5).float() * 2 - 1
    with torch.no_grad():
        before = model(data).argmax(1)
        kept = float((model((data + noise).clamp(0, 255)).argmax(1) == before).float().mean())
        flipped = model((data + signs * noise.abs()).clamp(0, 255)).argmax(1)
        kept_by_random_signs = float((flipped == before).float().mean())
    assert kept >= 0.95
    assert kept_by_random_signs < kept - 0.05  # the same magnitudes with random signs change more predictions
    assert all(p.grad is None for p in model.parameters())


def test_friendly_noise_training_adds_noise_from_its_epoch_on():
    settings = FriendlyNoiseSettings(steps=2, begin_epoch=1, random_noise="bernoulli", random_noise_scale=8)
    defense = FriendlyNoiseTraining(settings, generator=torch.Generator().manual_seed(0))
    data, index = torch.full((6, 1, 8, 8), 100.0), torch.arange(6)
    generator = torch.Generator().manual_seed(3)
    assert defense.epoch_rows(1, _linear_model(), data, torch.zeros(6, dtype=torch.int64)) is None
    assert defense.noise is None
    assert torch.equal((defense.batch(data, index, generator) - data).abs(), torch.full_like(data, 8.0))
    defense.epoch_rows(2, _linear_model(), data, torch.zeros(6, dtype=torch.int64))
    assert defense.noise is not None and defense.cost_s > 0
    shifted = defense.batch(data, index, generator) - data
    assert float(shifted.abs().max()) <= 16 + 8 + 1e-4 and not torch.equal(shifted.abs(), torch.full_like(data, 8.0))


def test_greedy_facility_location_follows_the_equations():
    points = torch.randn(9, 3, generator=torch.Generator().manual_seed(0))
    similarity = euclidean_similarity(points)
    assert float(similarity.min()) >= 0 and torch.allclose(similarity, similarity.T)
    chosen, gains = greedy_facility_location(similarity, 3)
    for k in range(3):  # each pick has the largest marginal gain F(S + j) - F(S), and reports it
        before = facility_location_value(similarity, chosen[:k])
        marginal = [facility_location_value(similarity, torch.cat([chosen[:k], torch.tensor([j])])) - before
                    for j in range(9) if j not in chosen[:k].tolist()]
        assert gains[k] == pytest.approx(max(marginal), rel=1e-5)
    best = max(facility_location_value(similarity, torch.tensor(s)) for s in itertools.combinations(range(9), 3))
    assert facility_location_value(similarity, chosen) >= (1 - 1 / math.e) * best


def _clusters_with_outliers() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Gradient estimates of two classes, each a tight blob; class 0 also holds 3 isolated points (rows 80..82)."""
    generator = torch.Generator().manual_seed(0)
    blob0 = torch.tensor([0.5, -0.5, 0.0]) + 0.01 * torch.randn(40, 3, generator=generator)
    blob1 = torch.tensor([-0.5, 0.5, 0.0]) + 0.01 * torch.randn(40, 3, generator=generator)
    outliers = torch.tensor([[0.9, 0.4, 0.8], [-0.2, -0.9, -0.7], [0.1, 0.3, -0.9]])
    gradients = torch.cat([blob0, blob1, outliers])
    labels = torch.tensor([0] * 40 + [1] * 40 + [0] * 3)
    return gradients, labels, np.arange(80, 83)


def test_epic_drops_the_isolated_points():
    gradients, labels, isolated = _clusters_with_outliers()
    dropped = isolated_rows(gradients, labels, EpicSettings(subset_fraction=0.1)).numpy()
    assert dropped[isolated].all()
    assert dropped[:80].mean() < 0.1


def test_epic_selects_on_its_schedule():
    defense = EpicTraining(EpicSettings(subset_fraction=0.2, every=2, start_epoch=1), num_classes=4)
    model = _linear_model()
    data = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 255
    targets = model(data).argmax(1)
    assert defense.epoch_rows(1, model, data, targets) is None and defense.dropped is None
    first = defense.epoch_rows(2, model, data, targets)
    assert first is not None and defense.dropped is not None and len(first) == 40 - defense.dropped.sum()
    cost = defense.cost_s
    assert defense.epoch_rows(3, model, data, targets) is first and defense.cost_s == cost  # kept between selections
    defense.epoch_rows(4, model, data, targets)
    assert defense.cost_s > cost  # a new selection


def _planted_poison_features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Representations of two classes (200 rows each); class 0 also holds 20 poisons, linearly separable."""
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((400, 16))
    poisons = rng.standard_normal((20, 16)) + 6.0 * np.eye(16)[0]
    features = np.concatenate([clean, poisons]).astype(np.float32)
    labels = np.array([0] * 200 + [1] * 200 + [0] * 20)
    return features, labels, np.arange(400, 420)


def test_spectral_signatures_flag_a_planted_poison_cluster():
    features, labels, poisoned = _planted_poison_features()
    flagged = spectral_signature_flags(features, labels, SpectralSignaturesSettings(poison_fraction_bound=0.1))
    scores = detection_scores(flagged, poisoned)
    assert scores["detection_recall"] >= 0.9
    assert flagged[labels == 0].sum() == round(1.5 * 0.1 * 220)  # 1.5 eps n per class
    assert flagged[labels == 1].sum() == round(1.5 * 0.1 * 200)


def test_activation_clustering_flags_the_planted_cluster_and_spares_a_clean_class():
    features, labels, poisoned = _planted_poison_features()
    flagged = activation_clustering_flags(features, labels, ActivationClusteringSettings(), seed=0)
    scores = detection_scores(flagged, poisoned)
    assert scores["detection_recall"] >= 0.9 and scores["detection_precision"] >= 0.9
    assert not flagged[labels == 1].any()  # one blob splits about evenly: nothing there is small enough


def test_activation_clustering_silhouette_and_pca_variants_flag_it_too():
    features, labels, poisoned = _planted_poison_features()
    variants = (ActivationClusteringSettings(analyzer="silhouette"), ActivationClusteringSettings(reduction="pca"))
    for settings in variants:
        flagged = activation_clustering_flags(features, labels, settings, seed=0)
        assert detection_scores(flagged, poisoned)["detection_recall"] >= 0.9
        assert not flagged[labels == 1].any()


def test_penultimate_features_are_the_heads_input():
    net = build_classifier("small_cnn", in_channels=1, num_classes=3, width=4)
    model = NormalizedClassifier(net, torch.zeros(1), torch.ones(1)).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    features = penultimate_features(model, images)
    assert features.shape == (5, net.head.in_features)
    with torch.no_grad():
        logits = model(torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2))
        assert np.allclose(net.head(torch.tensor(features)).numpy(), logits.numpy(), atol=1e-4)


def test_detection_scores():
    dropped = np.array([True, True, False, False, True])
    assert detection_scores(dropped, np.array([0, 3])) == {
        "rows_dropped": 3.0, "detection_recall": 0.5, "detection_precision": 1 / 3}
    assert "detection_precision" not in detection_scores(np.zeros(3, dtype=bool), np.array([1]))


@pytest.mark.parametrize("overrides, message", [
    (["defenses=[{name: epik}]"], "defenses.0"),
    (["defenses=[{name: epic, subset_fraction: 1.5}]"], "defenses.0.epic.subset_fraction"),
    (["classifier.epochs=4", "defenses=[{name: friendly_noise, begin_epoch: 4}]"], "defenses.0.begin_epoch"),
    (["defenses=[{name: epic}, {name: epic, every: 3}]"], "epic-0.3"),
])
def test_bad_defense_configs_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SweepConfig, REPO / "conf/defense_sweep.yaml", overrides)


def test_the_default_sweep_carries_all_four_defenses():
    cfg = load_config(SweepConfig, REPO / "conf/defense_sweep.yaml")
    assert {d.name for d in cfg.defenses} == {"friendly_noise", "epic", "activation_clustering", "spectral_signatures"}
    assert all(d.name in {"friendly_noise", "epic", "activation_clustering", "spectral_signatures"}
               for d in load_config(SweepConfig, REPO / "conf/defense_sweep_cluster.yaml").defenses)


def test_train_defended_reports_cost_and_dropped_rows_of_epic_and_a_filter():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(60) % 3
    cfg = ClassifierConfig(epochs=3, width=4, batch_size=16, device="cpu")
    epochs_seen = []
    epic = DefenseStatus()
    train_defended(images, labels, 3, cfg, EpicSettings(subset_fraction=0.2, every=1, start_epoch=1), seed=0,
                   status=epic, on_epoch=lambda epoch, loss, model: epochs_seen.append((epoch, epic.dropped is None)))
    assert epochs_seen == [(1, True), (2, False), (3, False)]  # all rows in epoch 1, selections from epoch 2
    assert epic.cost_s > 0 and epic.dropped.shape == (60,)
    spectral = DefenseStatus()
    model = train_defended(images, labels, 3, cfg, SpectralSignaturesSettings(), seed=0, status=spectral)
    assert spectral.dropped.sum() == 3 * round(1.5 * 0.33 * 20) and spectral.cost_s > 0
    assert not model.training
