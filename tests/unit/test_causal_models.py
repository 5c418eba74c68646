"""Model wiring (masks, pass-through, common random numbers) and the ranking rule, without long training."""

from __future__ import annotations

import numpy as np
import torch

from genlab.causal.candidates import Distance, Edit, apply_edits
from genlab.causal.gen.ranking import CandidateResult, rank_order, summarize
from genlab.causal.gen.train import TrainSettings, fit, make_replicas
from genlab.causal.graph import load_graph
from genlab.causal.scm import SCMSettings, scm_dataset
from genlab.models.causal import (
    CausalGen,
    CausalGenSettings,
    CausalVariationalGenSettings,
    FullyConnectedSettings,
    VAESettings,
    build_model,
    fully_connected_prior,
)
from tests.helpers import REPO

GRAPH = load_graph(REPO / "conf/graphs/scm5.yaml")


def test_causal_gen_sees_only_parents_and_passes_exogenous_nodes_through():
    model = CausalGen(GRAPH.structural_prior(), GRAPH.exogenous_mask(), [8], dropout=0.0, seeds=[0, 1])
    model.eval()
    x = torch.randn(2, 16, 5, requires_grad=True)
    out = model(x)
    torch.testing.assert_close(out[..., :2], x[..., :2])
    adjacency = GRAPH.adjacency()
    for j in (2, 3, 4):
        (grad,) = torch.autograd.grad(out[..., j].sum(), x, retain_graph=True)
        used = grad.abs().sum(dim=(0, 1)) > 0
        np.testing.assert_array_equal(used.numpy(), adjacency[:, j] > 0)


def test_fully_connected_prior_sees_everything_but_itself():
    prior = fully_connected_prior(5, GRAPH.exogenous_mask())
    np.testing.assert_array_equal(prior[:, 2:], 1 - np.eye(5)[:, 2:])
    np.testing.assert_array_equal(prior[:, :2], np.eye(5)[:, :2])


def test_every_model_kind_builds_and_reconstructs_its_shape():
    x = torch.randn(3, 7, 5)
    for settings in (CausalGenSettings(), FullyConnectedSettings(), CausalVariationalGenSettings(), VAESettings()):
        model = build_model(settings, GRAPH.structural_prior(), GRAPH.exogenous_mask(), seeds=[0, 1, 2])
        assert model.predict(x).shape == (3, 7, 5) and model.loss(x).shape == (3,)


def test_candidates_differing_at_one_node_train_identically_elsewhere():
    tables = {0: scm_dataset(GRAPH, SCMSettings(), 120, seed=0)}
    replicas = make_replicas(tables, [0, 3], 0.75)
    other = apply_edits(GRAPH, [Edit("remove", "x3", "x4")], "other")  # differs at node x4 only
    settings, train = CausalGenSettings(hidden=[16]), TrainSettings(epochs=3)
    models = []
    for graph in (GRAPH, other):
        torch.manual_seed(0)
        model = build_model(settings, graph.structural_prior(), GRAPH.exogenous_mask(), seeds=[0, 0])
        fit(model, replicas, train)
        models.append(model)
    x = torch.as_tensor(replicas[0].test).expand(2, -1, -1).contiguous()
    first, second = (m.predict(x) for m in models)
    torch.testing.assert_close(first[..., :4], second[..., :4], rtol=0, atol=0)
    assert not torch.equal(first[..., 4], second[..., 4])


def result(name, per_seed, edges, missing=0, extra=0):
    graph = GRAPH.with_edges(edges, name)
    errors = np.asarray(per_seed, dtype=float)[:, None].repeat(2, axis=1)
    return CandidateResult(name, graph, Distance(missing + extra, missing, extra), errors, errors)


def test_ranking_breaks_ties_within_one_standard_error_toward_fewer_edges():
    truth = GRAPH.edges
    results = [
        result("superset", [0.99, 1.01, 1.00], truth + [("x0", "x4")], extra=1),  # ties the truth
        result("true", [1.00, 1.00, 1.02], truth),
        result("missing", [1.50, 1.40, 1.45], truth[1:], missing=1),
        result("unlucky", [1.50, 0.90, 1.45], truth[1:], missing=1),  # beats the truth in seed 1 only
    ]
    assert [r.name for r in rank_order(results)] == ["true", "superset", "unlucky", "missing"]
    summary = summarize(results, "true")
    assert summary["true_graph_rank"] == 1 and summary["num_candidates"] == 4
    assert summary["true_beats_missing_or_reversed"] == 2 / 3
    row = next(r for r in summary["ranking"] if r["name"] == "missing")
    assert abs(row["gap_to_true"] - 0.443) < 1e-3 and row["p_true_better"] == 1.0


def test_a_clear_winner_with_more_edges_still_ranks_first():
    truth = GRAPH.edges
    results = [result("true", [1.0, 1.1, 0.9], truth), result("better", [0.5, 0.6, 0.4], truth + [("x0", "x4")], extra=1)]
    assert [r.name for r in rank_order(results)] == ["better", "true"]
    assert summarize(results, "true")["true_graph_rank"] == 2
