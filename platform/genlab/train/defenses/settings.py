"""The configs of the defenses PureGen is compared with (spec puregen.md §8), told apart by `name`.

Unlike a purifier, a defense changes how the classifier is trained (EPIC, friendly noise) or which
rows it trains on (activation clustering, spectral signatures), so it runs inside the sweep's trial
on the raw poisoned training set. The defaults are the papers'; the default digits sweep states its
scaled values beside them (conf/defense_sweep.yaml).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from genlab.config import StrictModel


class DefenseSettings(StrictModel):
    """Base of defense configs: what the sweep's tables and trial names need (as purifier settings offer)."""

    name: str

    def params(self, steps: int | None = None) -> dict[str, Any]:
        """Return the parameters that define the defense, as plain JSON values (`steps` is ignored)."""
        return self.model_dump(mode="json", exclude={"name"})

    def label(self, steps: int = 0) -> str:
        """Return a short name for run names and tables, e.g. `epic-0.3`."""
        return self.name

    def snapshot_steps(self) -> list[int]:
        """Return [0]: a defense yields one training set (the purifiers' step-count interface)."""
        return [0]


class FriendlyNoiseSettings(DefenseSettings):
    """FrieNDs (Liu et al. 2022): per-image noise as large as the budget allows while the model's
    output stays put, optimised once by the model being trained (after `begin_epoch` epochs on the
    data it is given: a non-oracle setting), plus fresh random noise on every batch."""

    name: Literal["friendly_noise"] = "friendly_noise"
    budget: float = Field(16.0, gt=0, le=255)  # L-inf clamp of the friendly noise, pixel units (paper: 16/255)
    constraint_weight: float = Field(1.0, ge=0)  # mu: loss = KL(f(x+d) || f(x)) - mu * mean(d^2), d in [0, 1] units
    lr: float = Field(100.0, gt=0)  # SGD (momentum 0.9, Nesterov) learning rate of the noise (paper: 100)
    steps: int = Field(20, ge=1)  # optimisation steps per batch (paper: 20 "epochs"); lr x0.1 at 1/2 and 3/4
    begin_epoch: int = Field(5, ge=0)  # classifier epochs trained before the noise is made (paper: 5 from scratch)
    batch_size: int = Field(256, ge=1)  # images optimised together
    random_noise: Literal["bernoulli", "gaussian", "none"] = "bernoulli"  # FrieNDs-B / -G: drawn anew per batch
    random_noise_scale: float = Field(8.0, ge=0, le=255)  # +-scale (bernoulli) or std (gaussian), pixels (paper: 8)

    def label(self, steps: int = 0) -> str:
        return f"friends-{self.random_noise[0].upper()}" if self.random_noise != "none" else "friends"


class EpicSettings(DefenseSettings):
    """EPIC (Yang et al. 2022): every `every` epochs from `start_epoch`, per class, greedy facility location
    picks `subset_fraction` of the rows as medoids in gradient space (softmax output minus one-hot label);
    rows whose medoid represents no more than `cluster_threshold` rows (isolated points) are dropped."""

    name: Literal["epic"] = "epic"
    subset_fraction: float = Field(0.3, gt=0, lt=1)  # medoids per class / class size (paper: 0.1, 0.2, 0.3)
    every: int = Field(10, ge=1)  # epochs between selections (paper: 10)
    start_epoch: int = Field(10, ge=0)  # first epoch trained on a selection (paper: after epoch 10)
    cluster_threshold: int = Field(1, ge=0)  # clusters of at most this many rows are dropped (paper: 1)

    def label(self, steps: int = 0) -> str:
        return f"epic-{self.subset_fraction:g}"


class ActivationClusteringSettings(DefenseSettings):
    """Activation clustering (Chen et al. 2018): per class, 2-means on the last hidden layer's activations
    reduced by ICA; the smaller cluster is flagged when it is small enough (or well separated)."""

    name: Literal["activation_clustering"] = "activation_clustering"
    reduction: Literal["ica", "pca"] = "ica"  # how activations are reduced before clustering (paper: ICA)
    dimensions: int = Field(10, ge=1)  # components kept (paper and ART: 10)
    analyzer: Literal["relative_size", "silhouette"] = "relative_size"  # how the smaller cluster is judged poisoned
    size_threshold: float = Field(0.35, gt=0, le=0.5)  # relative_size: flagged at most this share (ART: 0.35)
    silhouette_threshold: float = Field(0.10, ge=-1, le=1)  # silhouette: flagged when the 2-means silhouette is above

    def label(self, steps: int = 0) -> str:
        analyzer = "" if self.analyzer == "relative_size" else "-silhouette"
        return "ac" + analyzer + ("" if self.reduction == "ica" else "-pca")


class SpectralSignaturesSettings(DefenseSettings):
    """Spectral signatures (Tran et al. 2018): per class, each row's squared projection of its centred
    representation onto the top singular vector; the 1.5 * eps * n highest-scoring rows are dropped."""

    name: Literal["spectral_signatures"] = "spectral_signatures"
    poison_fraction_bound: float = Field(0.33, gt=0, lt=1)  # eps: bound on a class's poisoned share (ART: 0.33)
    removal_factor: float = Field(1.5, gt=0)  # rows removed per class = factor * eps * class size (paper: 1.5)

    def label(self, steps: int = 0) -> str:
        return f"ss-eps{self.poison_fraction_bound:g}"


DefenseConfig = Annotated[Union[FriendlyNoiseSettings, EpicSettings, ActivationClusteringSettings,
                                SpectralSignaturesSettings], Field(discriminator="name")]
DEFENSE_NAMES = frozenset(cls.model_fields["name"].default for cls in (
    FriendlyNoiseSettings, EpicSettings, ActivationClusteringSettings, SpectralSignaturesSettings))
