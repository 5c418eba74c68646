"""`LatentAugmentConfig`: everything `jobs/latent_augment.py` reads, validated (unknown keys are errors)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from genlab.augment.augmentations import AugmentationName
from genlab.augment.data import AugmentDataConfig
from genlab.augment.stages import TrainingConfig
from genlab.config import StrictModel
from genlab.models.vae import NetworkSize
from genlab.runtime import RaySettings

Pair = tuple[AugmentationName, AugmentationName]


class EvaluationSettings(StrictModel):
    """What is measured beyond the per-target losses."""

    recursive_steps: int = Field(7, ge=1)  # repeats of one map for the recursive-stability curve (slide 9: 7)
    grid_images: int = Field(8, ge=1, le=32)  # test images (columns) in every image grid


class SweepSettings(StrictModel):
    """A grid over config keys, one Ray Tune trial per combination; an empty grid runs once without Ray."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)  # dotted key -> values, e.g. {model.latent_dim: [4, 8]}
    # summary key that picks the best trial (lower is better)
    metric: Literal["latent_map_bce", "compose_bce_lavae", "involution_error_flips"] = "compose_bce_lavae"
    max_concurrent_trials: int = Field(2, ge=1)  # trials running at once
    cpus_per_trial: float = Field(1.0, gt=0)  # CPUs each trial reserves (torch threads = this, at least 1)
    gpus_per_trial: float = Field(0.0, ge=0)  # GPUs each trial reserves
    storage_path: str | None = None  # Tune results: a shared dir or s3://... on a cluster; None = <out>/tune

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"{key} has no values")
            if key.split(".")[0] in ("sweep", "ray", "experiment"):
                raise ValueError(f"{key} cannot be swept")
        return grid


class LatentAugmentConfig(StrictModel):
    """A LAVAE experiment: trained pairs (stages 1-2), transfer pairs (stage 3), baselines, evaluation."""

    experiment: str = "latent-augment"  # MLflow experiment
    seed: int = Field(0, ge=0)  # seeds weights, augmentation parameters, minibatch order and latent samples
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto (cuda when present), cpu or cuda
    threads: int = Field(1, ge=1)  # torch CPU threads without a sweep (more than the free cores slows it badly)
    data: AugmentDataConfig = Field(default_factory=AugmentDataConfig)  # digits or MNIST, sizes
    model: NetworkSize = Field(default_factory=NetworkSize)  # network width; the image side comes from the data
    training: TrainingConfig = Field(default_factory=TrainingConfig)  # the three stages, the CVAE, loss weights
    # pairs (a1, a2) each trained as one LAVAE (stages 1-2) with its baselines; the first is the headline pair
    pairs: list[Pair] = Field(default_factory=lambda: [("flip_lr", "flip_ud"), ("rotate_cw", "flip_lr")], min_length=1)
    # columns of the transfer matrix: one stage-3 head per (trained pair, transfer pair)
    transfer_pairs: list[Pair] = Field(default_factory=lambda: [("flip_lr", "flip_ud"), ("rotate_cw", "rotate_ccw")])
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)  # recursion depth, grid size
    sweep: SweepSettings = Field(default_factory=SweepSettings)  # Ray Tune grid; empty = one run without Ray
    ray: RaySettings = Field(default_factory=RaySettings)  # where Ray runs (sweeps only)

    @field_validator("pairs", "transfer_pairs")
    @classmethod
    def _distinct(cls, pairs: list[Pair]) -> list[Pair]:
        for first, second in pairs:
            if first == second:
                raise ValueError(f"pair ({first}, {second}) repeats one augmentation")
        if len(set(pairs)) < len(pairs):
            raise ValueError("a pair is listed twice")
        return pairs
