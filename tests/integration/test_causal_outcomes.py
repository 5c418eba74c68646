"""The issue's outcomes with real training: the hypothesis ranking, causal vs non-causal OOD, low-SNR variational gain.

Each test trains small models on a few seeds (no mocks) and asserts a direction that would
fail if the method did not work: a wrong ranking, a baseline beating the causal model, the
variational model losing at low SNR.
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.causal.candidates import structural_hamming_distance
from genlab.causal.gen.config import CandidateSettings, DataSettings
from genlab.causal.gen.hypothesis import build_candidates
from genlab.causal.gen.ranking import CandidateResult, summarize
from genlab.causal.gen.tables import make_tables
from genlab.causal.gen.train import TrainSettings, make_replicas, ood_errors
from genlab.causal.graph import load_graph
from genlab.causal.scm import SCMSettings
from genlab.causal.splits import SplitSettings, split_columns
from genlab.models.causal import CausalGenSettings, CausalVariationalGenSettings, FullyConnectedSettings, VAESettings
from tests.helpers import REPO

torch.set_num_threads(1)  # the models are tiny: more threads only contend on a shared machine
SCM5 = load_graph(REPO / "conf/graphs/scm5.yaml")
PENDULUM = load_graph(REPO / "conf/graphs/pendulum.yaml")


def mean_ood(settings, graph, replicas, train: TrainSettings, prior=None) -> np.ndarray:
    """OOD error per seed (mean over splits), float [seeds]."""
    errors = ood_errors(settings, train, graph.structural_prior() if prior is None else prior,
                        graph.exogenous_mask(), replicas)["ood_mse"]
    return errors.reshape(len({r.seed for r in replicas}), -1).mean(axis=1)


def replicas_for(graph, data: DataSettings, seeds: list[int], split: SplitSettings):
    columns = split_columns(graph.nodes, graph.exogenous, split)
    return make_replicas(make_tables(data, graph, seeds), columns, split.quantile)


def test_true_graph_ranks_first_and_beats_every_missing_or_reversed_edge():
    """Default hypothesis-test settings (smaller nets), 3 seeds: the truth is ranked first and beats every H- graph."""
    replicas = replicas_for(SCM5, DataSettings(), [0, 1, 2], SplitSettings())
    settings, train = CausalGenSettings(hidden=[32, 32]), TrainSettings(lr=3e-3)
    results = []
    for graph in build_candidates(SCM5, CandidateSettings(distances=[])):
        errors = ood_errors(settings, train, graph.structural_prior(), SCM5.exogenous_mask(), replicas)
        results.append(CandidateResult(graph.name, graph, structural_hamming_distance(SCM5, graph),
                                       errors["ood_mse"].reshape(3, -1), errors["train_mse"].reshape(3, -1)))
    summary = summarize(results, "true")
    assert summary["num_candidates"] == 16
    assert summary["true_graph_rank"] == 1
    assert summary["true_beats_missing_or_reversed"] == 1.0
    wrong = [row for row in summary["ranking"] if row["missing"] > 0]
    assert min(row["gap_to_true"] for row in wrong) > 0.05  # missing or reversed edges cost clearly


def test_causal_model_beats_non_causal_baselines_out_of_distribution_on_the_pendulum():
    """Pendulum labels (noise 0.1), held-out tails of the light and pendulum angles, 3 seeds."""
    replicas = replicas_for(PENDULUM, DataSettings(kind="pendulum"), [0, 1, 2], SplitSettings(variables="exogenous"))
    train = TrainSettings(lr=1e-2)
    causal = mean_ood(CausalGenSettings(), PENDULUM, replicas, train)
    fully_connected = mean_ood(FullyConnectedSettings(), PENDULUM, replicas, train)
    vae = mean_ood(VAESettings(hidden=[64, 64, 64]), PENDULUM, replicas, train)
    assert causal.mean() < 0.8 * fully_connected.mean() and (causal < fully_connected).all()
    assert causal.mean() < 0.5 * vae.mean() and (causal < vae).all()


def test_variational_variant_helps_at_low_snr_only():
    """Trained identically (Adam 1e-2): at 2 dB Causal Variational Gen < Causal Gen OOD; near noiseless it flips.

    The gain is a regularisation effect: Causal Gen trained at lr 1e-3 does as well (see the closing note).
    """
    train = TrainSettings(lr=1e-2)
    split = SplitSettings(variables="exogenous")
    noisy = replicas_for(SCM5, DataSettings(scm=SCMSettings(snr_db=2.0)), [0, 1, 2, 3], split)
    variational = mean_ood(CausalVariationalGenSettings(), SCM5, noisy, train)
    deterministic = mean_ood(CausalGenSettings(), SCM5, noisy, train)
    assert variational.mean() < 0.9 * deterministic.mean() and (variational < deterministic).sum() >= 3
    clean = replicas_for(PENDULUM, DataSettings(kind="pendulum"), [0], split)
    assert mean_ood(CausalVariationalGenSettings(), PENDULUM, clean, train)[0] > \
        mean_ood(CausalGenSettings(), PENDULUM, clean, train)[0]
