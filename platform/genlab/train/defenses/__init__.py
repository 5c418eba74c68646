"""The defenses PureGen is compared with: FrieNDs, EPIC, activation clustering, spectral signatures."""

from genlab.train.defenses.settings import (
    DEFENSE_NAMES,
    ActivationClusteringSettings,
    DefenseConfig,
    DefenseSettings,
    EpicSettings,
    FriendlyNoiseSettings,
    SpectralSignaturesSettings,
)
from genlab.train.defenses.training import DefenseStatus, detection_scores, train_defended

__all__ = ["DEFENSE_NAMES", "ActivationClusteringSettings", "DefenseConfig", "DefenseSettings", "DefenseStatus",
           "EpicSettings", "FriendlyNoiseSettings", "SpectralSignaturesSettings", "detection_scores", "train_defended"]
