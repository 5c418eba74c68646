"""The issue's outcomes with real training: the hypothesis ranking, causal vs non-causal OOD at tuned learning rates,
the low-SNR comparison, generation.

Each test trains small models on a few seeds (no mocks) and asserts a direction that would
fail if the method did not work: a wrong ranking, a baseline beating the causal model, the
variational model losing at low SNR.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.causal.candidates import structural_hamming_distance
from genlab.causal.gen.config import CandidateSettings, DataSettings
from genlab.causal.gen.hypothesis import build_candidates
from genlab.causal.gen.ranking import CandidateResult, summarize
from genlab.causal.gen.tables import make_tables
from genlab.causal.gen.train import TrainSettings, make_replicas, ood_errors, tune_learning_rate
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


# Each model's own learning rate on the pendulum labels, tuned by tune_learning_rate over {1e-3, 3e-3, 1e-2} on
# in-distribution validation rows (never the held-out tails), 3 seeds.
PENDULUM_LR = {"causal_gen": 1e-3, "fully_connected": 1e-3, "vae": 3e-3}


def test_causal_model_beats_non_causal_baselines_out_of_distribution_on_the_pendulum():
    """Pendulum labels (noise 0.1), held-out tails of the light and pendulum angles, 3 seeds, each model at its own
    tuned rate; the VAE predicts each shadow label from the row with that label hidden. Measured OOD MSE: Causal Gen
    0.226, fully connected 0.426, VAE 0.98."""
    replicas = replicas_for(PENDULUM, DataSettings(kind="pendulum"), [0, 1, 2], SplitSettings(variables="exogenous"))
    causal = mean_ood(CausalGenSettings(), PENDULUM, replicas, TrainSettings(lr=PENDULUM_LR["causal_gen"]))
    fully_connected = mean_ood(FullyConnectedSettings(), PENDULUM, replicas,
                               TrainSettings(lr=PENDULUM_LR["fully_connected"]))
    vae = mean_ood(VAESettings(hidden=[64, 64, 64]), PENDULUM, replicas, TrainSettings(lr=PENDULUM_LR["vae"]))
    assert causal.mean() < 0.8 * fully_connected.mean() and (causal < fully_connected).all()
    assert causal.mean() < 0.5 * vae.mean() and (causal < vae).all()


# Each model's own learning rate at 2 dB, tuned by genlab.causal.gen.train.tune_learning_rate over {1e-3, 3e-3, 1e-2} on
# in-distribution validation rows (never the held-out tails), 4 seeds: test_low_snr_learning_rates_are_the_tuned_ones.
LOW_SNR_LR = {"causal_gen": 1e-3, "causal_variational_gen": 1e-2, "vae": 3e-3}
LR_GRID = [1e-3, 3e-3, 1e-2]


def low_snr_replicas():
    return replicas_for(SCM5, DataSettings(scm=SCMSettings(snr_db=2.0)), [0, 1, 2, 3], SplitSettings(variables="exogenous"))


def test_at_tuned_learning_rates_the_variational_variant_gains_nothing_at_low_snr():
    """At 2 dB, each model at its own tuned rate: Causal Variational Gen's OOD error is not below Causal Gen's
    (measured 0.583 vs 0.575, 4 seeds). At the shared rate 1e-2 the variational variant looked better only because
    1e-2 over-fits Causal Gen: Causal Gen at 1e-2 is clearly worse than at its own rate."""
    noisy = low_snr_replicas()
    variational = mean_ood(CausalVariationalGenSettings(), SCM5, noisy,
                           TrainSettings(lr=LOW_SNR_LR["causal_variational_gen"]))
    deterministic = mean_ood(CausalGenSettings(), SCM5, noisy, TrainSettings(lr=LOW_SNR_LR["causal_gen"]))
    assert variational.mean() > 0.97 * deterministic.mean()
    pinned = mean_ood(CausalGenSettings(), SCM5, noisy, TrainSettings(lr=1e-2))
    assert pinned.mean() > 1.05 * deterministic.mean()


@pytest.mark.long
def test_low_snr_learning_rates_are_the_tuned_ones():
    """tune_learning_rate picks LOW_SNR_LR (about 3 min on 2 busy cores)."""
    noisy = low_snr_replicas()
    for kind, settings in (("causal_gen", CausalGenSettings()), ("causal_variational_gen", CausalVariationalGenSettings()),
                           ("vae", VAESettings(hidden=[64, 64, 64]))):
        lr, _ = tune_learning_rate(settings, TrainSettings(), SCM5.structural_prior(), SCM5.exogenous_mask(), noisy,
                                   LR_GRID)
        assert lr == LOW_SNR_LR[kind], kind


def test_generation_job_causal_gen_generates_and_intervenes_closer_than_the_vae(mlflow_store, tmp_path, monkeypatch):
    """Two seeds of the 5-node SCM: Causal Gen's ancestral samples are nearer the held-out rows than the VAE's,
    and its do() means nearer the true SCM's than the VAE's conditioning (measured, 3 seeds of the default
    config: energy distance 0.050 vs 0.106, do() error 0.079 vs 0.234; a fresh true sample scores 0.040)."""
    from mlflow.tracking import MlflowClient

    from genlab.causal.gen.synthesis import GenerateConfig, run_generation_study
    from genlab.config import validate

    monkeypatch.chdir(REPO)
    small = {"hidden": [16, 16], "dropout": 0.0, "lr": 3e-3}
    cfg = validate(GenerateConfig, {"seeds": [0, 1], "num_generated": 1000, "train": {"epochs": 40},
                                    "models": {"causal_gen": small, "fully_connected": small,
                                               "causal_variational_gen": {"lr": 1e-2}, "vae": {"lr": 3e-3}}})
    summary = run_generation_study(cfg, tmp_path / "out")
    rows = {row["model"]: row for row in summary["models"]}
    assert list(rows) == ["true_scm", "causal_gen", "causal_variational_gen", "fully_connected", "vae"]
    assert rows["causal_gen"]["energy_distance"] < rows["vae"]["energy_distance"]
    assert rows["causal_gen"]["do_mean_error"] < 0.6 * rows["vae"]["do_mean_error"]
    assert rows["true_scm"]["energy_distance"] < rows["vae"]["energy_distance"]
    run = MlflowClient(mlflow_store).get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED" and "causal_gen.do_mean_error_mean" in run.data.metrics
    artifacts = {a.path for a in MlflowClient(mlflow_store).list_artifacts(run.info.run_id, "graph")}
    assert artifacts == {"graph/graph.png"}
