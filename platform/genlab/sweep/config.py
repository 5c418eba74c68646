"""`SweepConfig`: everything `jobs/defense_sweep.py` reads, validated (unknown keys are errors)."""

from __future__ import annotations

from pydantic import Field, model_validator

from genlab.attacks import AttackConfig, BadNetsConfig, BlendConfig
from genlab.config import StrictModel
from genlab.data import DatasetConfig
from genlab.purify import PurifierConfig
from genlab.purify.baselines import GaussianNoiseSettings, JpegSettings, NoneSettings
from genlab.purify.stage import PurificationStageConfig
from genlab.runtime import RaySettings
from genlab.train.classifier import ClassifierConfig


class TuneSettings(StrictModel):
    """How Ray Tune schedules the trials."""

    max_concurrent_trials: int = Field(2, ge=1)  # trials running at once
    cpus_per_trial: float = Field(1.0, gt=0)  # CPUs each trial reserves (torch threads = this, at least 1)
    gpus_per_trial: float = Field(0.0, ge=0)  # GPUs per trial; fractions pack several trials on one GPU
    max_failures: int = Field(0, ge=-1)  # retries of a failed trial (-1 = unlimited)
    storage_path: str | None = None  # Tune results: local dir or s3://...; None = <work_dir>/ray_results


class FaultInjection(StrictModel):
    """Deliberate faults, to check failure handling end to end (empty in normal use)."""

    fail_trials_matching: list[str] = Field(default_factory=list)  # trials whose run name contains one of these raise


class SweepConfig(StrictModel):
    """A defense sweep: attacks x purifier settings x classifier seeds."""

    experiment: str = "defense-sweep"  # MLflow experiment
    seed: int = 0  # seed of poison crafting and purification
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)  # classifier seeds (one trial each)
    work_dir: str = ".genlab"  # poison and purification caches, Tune results
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    attacks: list[AttackConfig] = Field(default_factory=lambda: [BadNetsConfig(), BlendConfig()], min_length=1)
    purifiers: list[PurifierConfig] = Field(
        default_factory=lambda: [NoneSettings(), JpegSettings(), GaussianNoiseSettings()], min_length=1)
    purification: PurificationStageConfig = Field(default_factory=PurificationStageConfig)
    tune: TuneSettings = Field(default_factory=TuneSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    faults: FaultInjection = Field(default_factory=FaultInjection)
    model_training: dict[str, str] = Field(  # generative purifiers without a model get one trained by this config
        default_factory=lambda: {"ebm": "conf/train_ebm.yaml", "ddpm": "conf/train_ddpm.yaml"})

    @model_validator(mode="after")
    def _unique_attack_keys(self) -> "SweepConfig":
        keys = [attack.key for attack in self.attacks]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"attacks: each attack may appear once, repeated: {duplicates}")
        return self
