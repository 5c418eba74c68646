"""Configs of the CCGM jobs (`jobs/ccgm_train.py`, `jobs/ccgm_debias.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genlab.causal.ccgm.fit import CCGMTrainSettings
from genlab.causal.ccgm.model import CCGMSettings
from genlab.causal.graph import GraphSpec
from genlab.causal.pendulum import PendulumSettings
from genlab.causal.scm import SCMSettings
from genlab.config import StrictModel

# The de-biasing story's SCM (spec 6.6): group -> score is the unwanted edge, skill -> score and
# score, skill -> outcome are legitimate. Mechanisms and noise are drawn by genlab.causal.scm.
FAIRNESS_GRAPH = GraphSpec(name="fairness", nodes=["group", "skill", "score", "outcome"],
                           edges=[("group", "score"), ("skill", "score"), ("score", "outcome"), ("skill", "outcome")])


class CCGMDataSettings(StrictModel):
    """The training data: rows of a known SCM, or pendulum images with their labels."""

    kind: Literal["scm", "pendulum"] = "scm"  # scm: tabular rows over `graph`; pendulum: grayscale images
    graph: str | GraphSpec = FAIRNESS_GRAPH  # scm: the true graph (YAML path or inline); pendulum: its graph file
    num_samples: int = Field(2000, ge=16)  # scm: training rows; pendulum: scenes drawn from the grid (train + test)
    scm: SCMSettings = Field(default_factory=lambda: SCMSettings(mechanism="mlp"))  # scm: mechanisms and noise
    scm_seed: int = 0  # scm: seed of the SCM's mechanism weights (the known equation set)
    pendulum: PendulumSettings = Field(  # pendulum: small grayscale images, CausalVAE's interleaved 3:1 split
        default_factory=lambda: PendulumSettings(image_size=32, channels=1, split="interleaved"))


class EvaluationSettings(StrictModel):
    """How interventions are evaluated and drawn."""

    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9], min_length=1)  # do() values per node
    num_samples: int = Field(20000, ge=100)  # generated and true draws per do() cell
    grid_columns: int = Field(7, ge=2)  # pendulum: values swept per row of the intervention grid
    counterfactual_images: int = Field(64, ge=1)  # pendulum: test images per counterfactual-fidelity cell


class CCGMJobConfig(StrictModel):
    """What both CCGM jobs share."""

    experiment: str = "ccgm-train"  # MLflow experiment
    seed: int = 0  # data draw, model init and sampling
    torch_threads: int = Field(1, ge=1)  # CPU threads torch may use (small models: 1 is fastest on a shared machine)
    data: CCGMDataSettings = Field(default_factory=CCGMDataSettings)
    model: CCGMSettings = Field(default_factory=CCGMSettings)
    train: CCGMTrainSettings = Field(default_factory=CCGMTrainSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)


class BiasSettings(StrictModel):
    """The unwanted relationship and the downstream task SkewSize audits."""

    edge: tuple[str, str] = ("group", "score")  # (parent, child): the edge to cut
    features: list[str] = Field(default_factory=lambda: ["group", "score"], min_length=1)  # classifier inputs
    target: str = "outcome"  # classified above / below its median
    attribute: str = "group"  # the spurious attribute (binarised at its median)


class CCGMDebiasConfig(CCGMJobConfig):
    """`jobs/ccgm_debias.py`: the whole de-biasing story on a known SCM."""

    experiment: str = "ccgm-debias"
    data: CCGMDataSettings = Field(default_factory=CCGMDataSettings)
    bias: BiasSettings = Field(default_factory=BiasSettings)
    causalvae_baseline: bool = True  # also train the CausalVAE baseline (joint) and de-bias it by do() on the same data
