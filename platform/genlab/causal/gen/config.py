"""Configs of the causal jobs (`jobs/causal_train.py`, `jobs/causal_hypothesis.py`) and the data they share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genlab.causal.candidates import ListedCandidate
from genlab.causal.gen.train import TrainSettings
from genlab.causal.graph import GraphSpec
from genlab.causal.pendulum import PendulumSettings
from genlab.causal.scm import SCMSettings
from genlab.causal.splits import SplitSettings
from genlab.config import StrictModel
from genlab.models.causal import (
    CausalGenSettings,
    CausalModelSettings,
    CausalVariationalGenSettings,
    FullyConnectedSettings,
    ModelSettings,
    VAESettings,
)
from genlab.runtime import RaySettings


class DataSettings(StrictModel):
    """The tables models are trained on: one per seed, from an SCM over the true graph or the pendulum."""

    kind: Literal["scm", "pendulum", "sachs"] = "scm"  # scm: drawn over `graph`; pendulum: its labels (graph =
    # pendulum's); sachs: the Sachs et al. protein data (from the cdt package; graph = conf/graphs/sachs.yaml)
    num_samples: int = Field(250, ge=8)  # rows per seed (the papers' small-data regime: 100-250; sachs: drawn of 7,466)
    scm: SCMSettings = Field(default_factory=SCMSettings)  # kind scm: mechanisms and noise
    pendulum: PendulumSettings = Field(  # kind pendulum: grid and label noise (the papers' 0.1)
        default_factory=lambda: PendulumSettings(label_noise_sd=0.1))


class TrialSettings(StrictModel):
    """How Ray Tune runs the trials (one per model or candidate graph)."""

    max_concurrent_trials: int = Field(2, ge=1)  # trials running at once
    cpus_per_trial: float = Field(1.0, gt=0)  # CPUs each trial reserves (torch threads = this, at least 1)
    storage_path: str | None = None  # Tune results: local dir or s3://...; None = <work_dir>/ray_results


class CandidateSettings(StrictModel):
    """Which hypotheses compete with the true graph."""

    single_edits: bool = True  # every acyclic graph one edit (add, remove, reverse) from the true graph
    distances: list[int] = Field(default_factory=lambda: [2])  # also draw random graphs at these SHDs
    per_distance: int = Field(3, ge=0)  # how many random graphs at each of `distances`
    seed: int = 0  # seed of the random draws
    listed: list[ListedCandidate] = Field(default_factory=list)  # named hypotheses, as edits of the true graph


class CausalJobConfig(StrictModel):
    """What both causal jobs share: the true graph, the data per seed, the OOD splits, training, Ray."""

    graph: str | GraphSpec = "conf/graphs/scm5.yaml"  # true (expert) graph: a YAML path or inline; fixes exogenous nodes
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)  # one table, SCM draw and model init each
    data: DataSettings = Field(default_factory=DataSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    tune: TrialSettings = Field(default_factory=TrialSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    work_dir: str = ".genlab"  # Tune results


class HypothesisConfig(CausalJobConfig):
    """`jobs/causal_hypothesis.py`: rank candidate graphs by out-of-distribution error."""

    experiment: str = "causal-hypothesis"  # MLflow experiment
    model: CausalModelSettings = Field(default_factory=CausalGenSettings)  # causal_gen or causal_variational_gen
    candidates: CandidateSettings = Field(default_factory=CandidateSettings)


class CausalTrainConfig(CausalJobConfig):
    """`jobs/causal_train.py`: the causal models and the non-causal baselines on the true graph's data."""

    experiment: str = "causal-train"  # MLflow experiment
    models: list[ModelSettings] = Field(  # one Tune trial each, named by kind (suffixed -1, -2 .. on repeats)
        default_factory=lambda: [CausalGenSettings(), CausalVariationalGenSettings(), VAESettings(),
                                 FullyConnectedSettings()], min_length=1)
