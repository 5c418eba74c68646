"""`SweepConfig`: everything `jobs/defense_sweep.py` reads, validated (unknown keys are errors)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from genlab.attacks import AttackConfig, BadNetsConfig, BlendConfig
from genlab.config import StrictModel
from genlab.data import DatasetConfig
from genlab.data.splits import DataSplitConfig
from genlab.purify import PurifierConfig
from genlab.purify.baselines import GaussianNoiseSettings, JpegSettings, NoneSettings
from genlab.purify.stage import PurificationStageConfig
from genlab.runtime import RaySettings
from genlab.train.classifier import ClassifierConfig
from genlab.train.defenses import DefenseConfig, EpicSettings, FriendlyNoiseSettings
from genlab.workspace import in_workspace

STORAGE_SCHEMES = ("s3", "gs")  # remote Tune storage Ray reaches through pyarrow (AWS S3, Google Cloud Storage)


class OptunaSettings(StrictModel):
    """`search: optuna`: one multi-objective study per attack over its planned purifier settings (genlab.sweep.search)."""

    num_samples: int = Field(8, ge=1)  # trials per attack
    seed: int = 0  # seed of the TPE sampler
    startup_trials: int = Field(4, ge=1)  # random trials before TPE models the results


class AshaSettings(StrictModel):
    """`search: asha`: the grid, with ASHA stopping trials that trail at each rung of classifier epochs."""

    metric: Literal["natural_accuracy", "poison_success_rate"] = "natural_accuracy"  # ranked max / min respectively
    grace_period: int = Field(1, ge=1)  # epochs every trial trains before it may be stopped
    reduction_factor: float = Field(2.0, gt=1)  # 1 / reduction_factor of the trials go on at each rung


class TuneSettings(StrictModel):
    """How Ray Tune schedules the trials."""

    search: Literal["grid", "optuna", "asha"] = "grid"  # grid: every (attack, setting, seed); optuna; asha: grid + early stopping
    optuna: OptunaSettings = Field(default_factory=OptunaSettings)  # used by search: optuna
    asha: AshaSettings = Field(default_factory=AshaSettings)  # used by search: asha
    max_concurrent_trials: int = Field(2, ge=1)  # trials running at once
    cpus_per_trial: float = Field(1.0, gt=0)  # CPUs each trial reserves (torch threads = this, at least 1)
    gpus_per_trial: float = Field(0.0, ge=0)  # GPUs per trial; fractions pack several trials on one GPU
    max_failures: int = Field(0, ge=-1)  # retries of a failed trial (-1 = unlimited); a retry resumes from its last checkpoint
    checkpoint_every: int = Field(5, ge=1)  # epochs between a trial's classifier checkpoints (through Tune, in storage_path)
    storage_path: str | None = None  # Tune results: local dir, s3://bucket/path or gs://...; None = <work_dir>/ray_results

    @field_validator("storage_path")
    @classmethod
    def _supported_storage(cls, path: str | None) -> str | None:
        if path is not None and "://" in path:
            scheme, _, rest = path.partition("://")
            if scheme not in STORAGE_SCHEMES or not rest.strip("/"):
                raise ValueError(f"{path!r}: use a local directory, s3://bucket/path or gs://bucket/path")
        return path


class FaultInjection(StrictModel):
    """Deliberate faults, to check failure handling end to end (empty in normal use)."""

    fail_trials_matching: list[str] = Field(default_factory=list)  # trials whose run name contains one of these raise
    fail_once: bool = False  # they raise on their first attempt only (marker files under <work_dir>/faults): retries pass
    kill_at_epoch: int | None = Field(None, ge=1)  # instead of raising at the start, their worker process is killed after this epoch


class SweepConfig(StrictModel):
    """A defense sweep: attacks x purifier settings x classifier seeds."""

    experiment: str = "defense-sweep"  # MLflow experiment
    seed: int = 0  # seed of poison crafting and purification
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)  # classifier seeds (one trial each)
    work_dir: str = Field(".genlab", validate_default=True)  # poison, model and purification caches, Tune results;
    # a relative path is taken under the workspace (genlab.workspace: $GENLAB_HOME, else the cwd, ~/genlab-work in a
    # `ray job submit --working-dir` job)
    purified_cache_max_gb: float | None = Field(None, gt=0)  # cap of <work_dir>/purified (least recently used evicted); None = no cap
    poison_cache_max_gb: float | None = Field(None, gt=0)  # cap of <work_dir>/poisons (least recently used evicted); None = no cap
    model_cache_max_gb: float | None = Field(None, gt=0)  # cap of <work_dir>/models and of the registered-model
    # download cache, each (least recently used evicted, never a model this sweep uses); None = no cap
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    attacks: list[AttackConfig] = Field(default_factory=lambda: [BadNetsConfig(), BlendConfig()], min_length=1)
    purifiers: list[PurifierConfig] = Field(
        default_factory=lambda: [NoneSettings(), JpegSettings(), GaussianNoiseSettings()], min_length=1)
    defenses: list[DefenseConfig] = Field(default_factory=list)  # FrieNDs, EPIC, AC, SS: on the raw poisoned sets
    purification: PurificationStageConfig = Field(default_factory=PurificationStageConfig)
    tune: TuneSettings = Field(default_factory=TuneSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    faults: FaultInjection = Field(default_factory=FaultInjection)
    model_training: dict[str, str] = Field(  # generative purifiers without a model get one trained by this config
        default_factory=lambda: {"ebm": "conf/train_ebm.yaml", "ddpm": "conf/train_ddpm.yaml"})
    # What the sweep's own EBM / DDPM learn from (genlab.sweep.generative_data): `disjoint` (the rule, as PureGen)
    # = the split's generative rows or `generative_dataset`, never a classifier or test row; the ablations
    # `same_as_classifier` (the classifier's clean rows) and `poisoned` (those rows with every attack's poisons).
    generative_data: Literal["disjoint", "same_as_classifier", "poisoned"] = "disjoint"
    split: DataSplitConfig = Field(default_factory=DataSplitConfig)  # the pool split (seeded): generative / classifier rows
    generative_dataset: DatasetConfig | None = None  # disjoint: learn from this dataset (in `dataset`'s format) instead
    target_classes: list[Annotated[int, Field(ge=0)]] | None = None  # backdoors run once per class listed (None: their own)

    @field_validator("work_dir")
    @classmethod
    def _work_dir_in_workspace(cls, work_dir: str) -> str:
        return str(in_workspace(work_dir))

    @model_validator(mode="after")
    def _unique_attack_keys(self) -> "SweepConfig":
        keys = [attack.key for attack in self.attacks]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"attacks: each attack may appear once, repeated: {duplicates}")
        return self

    @model_validator(mode="after")
    def _generative_data_disjoint(self) -> "SweepConfig":
        other = self.generative_dataset
        if other is None:
            return self
        if self.generative_data != "disjoint":
            raise ValueError(f"generative_dataset: applies to generative_data: disjoint, not the ablation "
                             f"{self.generative_data!r} (which learns from the classifier's rows)")
        if other.name == self.dataset.name or (other.name == "cinic10" and other.cinic_part != "imagenet"
                                              and self.dataset.name == "cifar10"):
            raise ValueError(f"generative_dataset: {other.name} (part {other.cinic_part}) holds the classifier's "
                             f"images: the generative models would see classifier or test rows. Leave it unset (the "
                             f"split's generative rows), use cinic10 with cinic_part: imagenet, or name the ablation "
                             f"generative_data: same_as_classifier")
        return self

    @model_validator(mode="after")
    def _split_leaves_the_models_rows(self) -> "SweepConfig":
        if self.generative_data == "disjoint" and self.generative_dataset is None and self.split.generative_fraction == 0:
            raise ValueError("split.generative_fraction: 0 leaves the generative models no rows to learn from; "
                             "give a fraction > 0 or a generative_dataset")
        return self

    def data_split(self) -> DataSplitConfig:
        """Return the pool split this sweep runs: `split`, but with no generative rows when the models learn from
        `generative_dataset` (then the classifier keeps every training row, as in the papers)."""
        return self.split if self.generative_dataset is None else self.split.model_copy(update={"generative_fraction": 0.0})

    @model_validator(mode="after")
    def _target_classes_replace_the_attacks_own(self) -> "SweepConfig":
        if self.target_classes is None:
            return self
        if not self.target_classes or len(set(self.target_classes)) != len(self.target_classes):
            raise ValueError(f"target_classes: list distinct classes, got {self.target_classes}")
        named = [a.key for a in self.attacks if "target_class" in a.model_fields_set]
        if named:
            raise ValueError(f"target_classes: set, so attacks may not name their own target_class ({named})")
        return self

    @model_validator(mode="after")
    def _asha_grace_within_epochs(self) -> "SweepConfig":
        if self.tune.search == "asha" and self.tune.asha.grace_period >= self.classifier.epochs:
            raise ValueError(f"tune.asha.grace_period ({self.tune.asha.grace_period}) must be below classifier.epochs "
                             f"({self.classifier.epochs}), or no trial can be stopped early")
        return self

    @model_validator(mode="after")
    def _defenses_act_within_epochs(self) -> "SweepConfig":
        labels = [defense.label() for defense in self.defenses]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"defenses: each setting may appear once, repeated: {repeated}")
        for i, defense in enumerate(self.defenses):
            first = {FriendlyNoiseSettings: "begin_epoch", EpicSettings: "start_epoch"}.get(type(defense))
            if first is not None and getattr(defense, first) >= self.classifier.epochs:
                raise ValueError(f"defenses.{i}.{first} ({getattr(defense, first)}) must be below classifier.epochs "
                                 f"({self.classifier.epochs}), or {defense.name} never acts")
        return self
