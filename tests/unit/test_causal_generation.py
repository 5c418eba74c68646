"""Random splits, random true DAGs, per-replica priors, ancestral sampling, energy distance, the Sachs files and the
VAE's held-out prediction: wiring checks without long training."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from genlab.causal.gen.generation import (
    ancestral_sample,
    complete_dag_prior,
    conditional_mean,
    energy_distance,
    topological_columns,
)
from genlab.causal.gen.power import PowerSettings, aggregate, power_candidates, study_graph_truth
from genlab.causal.gen.train import TrainSettings, column_mse, fit, make_replicas, noise_groups
from genlab.causal.graph import load_graph
from genlab.causal.random_graphs import random_dag
from genlab.causal.sachs import DROPPED_EDGE, consensus_edges, sachs_table
from genlab.causal.splits import random_split, tail_split
from genlab.models.causal import CausalGen, CausalGenSettings, RowVAE, VAESettings, build_model
from tests.helpers import REPO

GRAPH = load_graph(REPO / "conf/graphs/scm5.yaml")


def test_random_split_has_the_tail_size_and_differs_by_column():
    table = np.random.default_rng(0).normal(size=(200, 3))
    tail, random = (make_replicas({0: table}, [0, 1], 0.75, kind) for kind in ("tail", "random"))
    assert [len(r.test) for r in tail] == [len(r.test) for r in random] == [50, 50]
    first, second = random_split(200, 0.25, (0, 0)), random_split(200, 0.25, (0, 1))
    assert first.sum() == 50 and not np.array_equal(first, second)
    assert np.array_equal(first, random_split(200, 0.25, (0, 0)))  # seeded
    # a random split's test rows span the column's range; the tail's lie above its 75th percentile
    assert random[0].test[:, 0].min() < tail[0].test[:, 0].min() - 1.0
    assert tail_split(table[:, 0], 0.75).sum() == 50


def test_random_dags_have_the_asked_size_and_a_non_topological_column_order():
    rng = np.random.default_rng(0)
    graphs = [random_dag(8, 10, "mim", rng, f"g{i}") for i in range(20)]
    assert all(g.num_edges == 10 and nx.is_directed_acyclic_graph(g.graph) for g in graphs)
    assert any(any(g.nodes.index(a) > g.nodes.index(b) for a, b in g.edges) for g in graphs)
    settings = PowerSettings()
    truths = [study_graph_truth(settings, i) for i in range(settings.graphs)]
    assert {len(g.nodes) for g in truths} <= set(range(5, 11)) and len({len(g.nodes) for g in truths}) >= 3
    assert [g.mechanisms[g.nodes[0]] for g in truths[:3]] == ["linear", "mlp", "mim"]
    candidates = power_candidates(truths[0], settings.model_copy(update={"distances": []}), np.random.default_rng(1))
    assert candidates[0].name == "true" and len({tuple(sorted(c.graph.edges)) for c in candidates}) == len(candidates)
    assert sum(c.name.startswith("remove(") for c in candidates) == truths[0].num_edges


def test_power_aggregate_counts_first_ranks_and_rejections():
    graphs = [{"family": "mlp", "true_rank_deliberate": 1, "true_rank_random": 3,
               "candidates": [{"shd": 0, "missing": 0, "p_deliberate": None, "p_random": None},
                              {"shd": 1, "missing": 1, "p_deliberate": 0.01, "p_random": 0.2},
                              {"shd": 1, "missing": 0, "p_deliberate": 0.5, "p_random": 0.5}]},
              {"family": "mim", "true_rank_deliberate": 2, "true_rank_random": 1,
               "candidates": [{"shd": 2, "missing": 1, "p_deliberate": 0.03, "p_random": 0.03}]}]
    summary = aggregate(graphs, alpha=0.05)
    assert summary["true_graph_first_rate_deliberate_se_rule"] == 0.0  # no true_rank_se_ keys here
    assert summary["graphs"] == 2
    assert summary["true_graph_first_rate_deliberate"] == summary["true_graph_first_rate_random"] == 0.5
    assert summary["power_by_shd_deliberate"] == {"1": 0.5, "2": 1.0}
    assert summary["power_missing_or_reversed_random"] == 0.5 and summary["power_extra_only_random"] == 0.0


def test_one_prior_per_replica_equals_separate_models():
    other = GRAPH.with_edges([("x0", "x2"), ("x2", "x3"), ("x3", "x4")], "chain")
    x = torch.randn(2, 16, 5)
    stacked = CausalGen(np.stack([GRAPH.structural_prior(), other.structural_prior()]), GRAPH.exogenous_mask(), [8],
                        dropout=0.0, seeds=[0, 0]).eval()
    for r, graph in enumerate((GRAPH, other)):
        alone = CausalGen(graph.structural_prior(), GRAPH.exogenous_mask(), [8], dropout=0.0, seeds=[0]).eval()
        torch.testing.assert_close(stacked(x)[r], alone(x[r:r + 1])[0])


def test_candidates_batched_on_one_table_train_unchanged_nodes_identically():
    """Common random numbers: replicas of one table share minibatches and dropout, so a node whose parents a
    candidate leaves alone ends with the truth's error to the last bit, and only the edited node differs."""
    rng = np.random.default_rng(0)
    table = rng.normal(size=(120, 5))
    table[:, 2] += table[:, 0] + table[:, 1]
    table[:, 3] += table[:, 2]
    table[:, 4] += table[:, 1] + table[:, 3]
    replicas = make_replicas({7: table}, [0, 2], 0.75)
    assert noise_groups(replicas) is None  # two tables: each draws its own noise
    edited = GRAPH.with_edges([e for e in GRAPH.edges if e != ("x1", "x4")], "remove(x1->x4)")
    candidates = [GRAPH, edited]
    batched = replicas * len(candidates)
    assert noise_groups(batched) == [0, 1, 0, 1]
    priors = np.stack([g.structural_prior() for g in candidates for _ in replicas])
    torch.manual_seed(0)
    model = build_model(CausalGenSettings(hidden=[8], dropout=0.2), priors, GRAPH.exogenous_mask(),
                        seeds=[r.seed for r in batched], groups=noise_groups(batched))
    fit(model, batched, TrainSettings(epochs=3, batch_size=16, lr=1e-2))
    errors = column_mse(model, [r.test for r in batched]).reshape(2, 2, 5)
    np.testing.assert_array_equal(errors[0, :, :4], errors[1, :, :4])  # x2 (dropout on) and x3: bit-identical
    assert np.all(errors[1, :, 4] > errors[0, :, 4] + 0.05)  # x4 lost its parent x1


def test_ancestral_sampling_follows_the_graph_and_do_cuts_upstream():
    """Causal Gen whose nets are exact copies (x2 = x0 + x1, x3 = x2, x4 = x1 + x3) generates the SCM's joint."""
    exogenous = GRAPH.exogenous_mask()
    prior = GRAPH.structural_prior()

    class Exact(torch.nn.Module):
        def predict(self, x):
            out = x.clone()
            out[..., 2] = x[..., 0] + x[..., 1]
            out[..., 3] = x[..., 2]
            out[..., 4] = x[..., 1] + x[..., 3]
            return out

    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 5))
    train[:, 2] = train[:, 0] + train[:, 1]
    train[:, 3] = train[:, 2]
    train[:, 4] = train[:, 1] + train[:, 3]
    generated = ancestral_sample(Exact(), prior, exogenous, train, 4000, rng)
    np.testing.assert_allclose(generated[:, 4], generated[:, 0] + 2 * generated[:, 1], atol=1e-5)
    assert abs(np.corrcoef(generated[:, 0], generated[:, 1])[0, 1]) < 0.05  # exogenous drawn independently
    done = ancestral_sample(Exact(), prior, exogenous, train, 4000, rng, {2: 3.0})
    assert np.all(done[:, 2] == 3.0) and np.allclose(done[:, 3], 3.0)
    assert abs(done[:, 4].mean() - 3.0 - train[:, 1].mean()) < 0.06  # E[x4 | do(x2 = 3)] = E[x1] + 3
    assert abs(done[:, 0].mean()) < 0.1  # upstream x0 is not moved by do(x2)
    # conditioning (the VAE's answer) differs from do(): E[x0 | x2 near 3] is about 1.5
    assert conditional_mean(generated, 2, 3.0)[0] > 1.0
    assert topological_columns(prior, exogenous) == [2, 3, 4]


def test_complete_dag_prior_puts_exogenous_columns_first_and_is_acyclic():
    exogenous = np.array([False, True, False, True])
    prior = complete_dag_prior(exogenous)
    assert np.array_equal(np.diag(prior), exogenous.astype(np.float32))
    graph = nx.DiGraph([(i, j) for i, j in zip(*np.nonzero(prior)) if i != j])
    assert nx.is_directed_acyclic_graph(graph)
    assert set(graph.predecessors(0)) == {1, 3} and set(graph.predecessors(2)) == {0, 1, 3}


def test_energy_distance_separates_shifted_samples_from_equal_ones():
    rng = np.random.default_rng(0)
    same = energy_distance(rng.normal(size=(400, 3)), rng.normal(size=(400, 3)))
    shifted = energy_distance(rng.normal(size=(400, 3)), rng.normal(0.5, 1.0, size=(400, 3)))
    assert 0 <= same < 0.03 and shifted > 0.15  # 2 E|X-Y| - ...: shift 0.5 in 3 dims gives about 0.2


def test_vae_predicts_a_column_it_does_not_see():
    model = RowVAE(GRAPH.exogenous_mask(), VAESettings(hidden=[8]), seeds=[0]).eval()
    x = torch.randn(1, 32, 5)
    changed = x.clone()
    changed[..., 3] += 5.0
    torch.testing.assert_close(model.predict(changed)[..., 3], model.predict(x)[..., 3])  # column 3 hidden from it
    torch.testing.assert_close(model.predict(x)[..., :2], x[..., :2])
    assert model.loss(x).shape == (1,)


def test_sachs_files_come_from_cdt_and_the_graph_file_is_the_consensus_less_one_cycle_edge():
    edges = consensus_edges()
    graph = load_graph(REPO / "conf/graphs/sachs.yaml")
    assert len(edges) == 18 and not nx.is_directed_acyclic_graph(nx.DiGraph(edges))
    assert set(graph.edges) == set(edges) - {DROPPED_EDGE}
    table = sachs_table(graph.nodes)
    assert table.shape == (7466, 11) and np.isfinite(table).all()
    with pytest.raises(Exception, match="config key graph"):
        sachs_table(("praf", "nope"))


def test_scm_counterfactual_from_the_rows_own_noise():
    from genlab.causal.interventions import do_scm
    from genlab.causal.scm import SCMSettings, build_scm

    scm = build_scm(GRAPH, SCMSettings(mechanism="linear"), seed=0)
    rows, noise = scm.sample_with_noise(300, np.random.default_rng(1))
    np.testing.assert_array_equal(rows, scm.sample(300, np.random.default_rng(1)))
    np.testing.assert_allclose(scm.from_noise(noise), rows)
    counterfactual = do_scm(scm, {"x2": 1.0}).from_noise(noise)
    np.testing.assert_array_equal(counterfactual[:, :2], rows[:, :2])  # x0, x1 are not downstream of x2
    assert np.all(counterfactual[:, 2] == 1.0) and not np.allclose(counterfactual[:, 3], rows[:, 3])
    # x3 = f(x2) + s e3 with linear f: the counterfactual moves every row's x3 by the same amount
    shift = counterfactual[:, 3] - rows[:, 3]
    np.testing.assert_allclose(shift, shift[0] + (rows[:, 2] - rows[0, 2]) * (shift[1] - shift[0]) /
                               (rows[1, 2] - rows[0, 2]), atol=1e-8)


def test_significance_rule_ignores_a_supergraph_that_wins_by_chance():
    from genlab.causal.candidates import Distance
    from genlab.causal.gen.ranking import CandidateResult, rank_order, tested_rank_order

    truth = GRAPH.with_edges(GRAPH.edges, "true")
    extra = GRAPH.with_edges([*GRAPH.edges, ("x0", "x3")], "extra")
    missing = GRAPH.with_edges(GRAPH.edges[1:], "missing")
    errors = {"true": np.array([1.0, 1.1, 0.9, 1.0, 1.05, 0.95]),
              "extra": np.array([0.9, 1.0, 0.8, 0.9, 1.1, 1.0]),  # lower in 4 of 6 seeds, by chance
              "missing": np.array([1.5, 1.6, 1.4, 1.5, 1.55, 1.45])}
    results = [CandidateResult(g.name, g, Distance(0, 0, 0), errors[g.name][:, None], errors[g.name][:, None])
               for g in (truth, extra, missing)]
    assert [r.name for r in rank_order(results)][0] == "extra"  # beyond one standard error
    assert [r.name for r in tested_rank_order(results, 0.05)] == ["true", "extra", "missing"]
