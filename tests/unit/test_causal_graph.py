"""Causal graphs: YAML -> networkx, matrices, refusals, SHD, candidate generation, drawings (a job refusing a
cyclic graph: integration/test_causal_jobs.py)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from genlab.causal.candidates import (
    Edit,
    ListedCandidate,
    apply_edits,
    candidates_at_distance,
    listed_candidate,
    single_edits,
    structural_hamming_distance,
)
from genlab.causal.drawing import draw_graph
from genlab.causal.gen.config import CandidateSettings
from genlab.causal.gen.hypothesis import build_candidates
from genlab.causal.graph import GraphError, GraphSpec, build_graph, load_graph
from genlab.errors import ConfigError
from tests.helpers import REPO


def graph_of(edges, nodes="abcde", **kwargs):
    return build_graph(GraphSpec(nodes=list(nodes), edges=[tuple(e) for e in edges], **kwargs))


def test_yaml_graph_matrices_follow_the_node_order():
    graph = load_graph(REPO / "conf/graphs/scm5.yaml")
    assert graph.nodes == ("x0", "x1", "x2", "x3", "x4")
    assert graph.exogenous == ("x0", "x1")
    np.testing.assert_array_equal(graph.exogenous_mask(), [True, True, False, False, False])
    a = graph.adjacency()
    assert a.dtype == np.float32 and a.shape == (5, 5)
    assert {(graph.nodes[i], graph.nodes[j]) for i, j in zip(*np.nonzero(a))} == set(graph.graph.edges)
    assert a[0, 2] == 1 and a[2, 0] == 0  # A[i, j] = 1 iff nodes[i] -> nodes[j]
    np.testing.assert_array_equal(graph.structural_prior(), a + np.diag([1, 1, 0, 0, 0]))
    np.testing.assert_array_equal(a, nx.to_numpy_array(graph.graph, nodelist=list(graph.nodes)))
    order = graph.topological_order()
    assert all(order.index(p) < order.index(c) for p, c in graph.edges)
    assert graph.parents("x4") == ["x1", "x3"]


def test_node_order_comes_from_the_config_not_networkx():
    graph = graph_of([("e", "a"), ("d", "a")])
    assert graph.nodes == tuple("abcde")
    assert graph.adjacency()[4, 0] == 1 and graph.parents("a") == ["d", "e"]


@pytest.mark.parametrize("edges, kwargs, message", [
    ([("a", "b"), ("b", "c"), ("c", "a")], {}, "cycle a -> b -> c -> a"),
    ([("a", "a")], {}, "self-loop"),
    ([("a", "z")], {}, "unknown node 'z'"),
    ([("a", "b"), ("a", "b")], {}, "more than once"),
    ([("a", "b")], {"exogenous": ["b"]}, "exogenous node 'b' has parents a"),
    ([("a", "b")], {"exogenous": ["q"]}, "unknown node 'q'"),
    ([("a", "b")], {"mechanisms": {"q": "mlp"}}, "unknown node 'q'"),
])
def test_bad_graphs_are_refused_with_a_clear_message(edges, kwargs, message):
    with pytest.raises(GraphError, match=message) as info:
        graph_of(edges, **kwargs)
    assert isinstance(info.value, ConfigError) and "\n" not in str(info.value)


def test_duplicate_node_and_malformed_yaml_are_refused(tmp_path):
    with pytest.raises(GraphError, match="listed more than once"):
        build_graph(GraphSpec(nodes=["a", "a"]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [a, b\nedges: [[a, b]]\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_graph(bad)
    bad.write_text("nodes: [a, b]\nedges: [[a, b]]\ncolour: red\n")
    with pytest.raises(GraphError, match="colour"):
        load_graph(bad)


@pytest.mark.parametrize("truth, hypothesis, expected", [
    ([("a", "b")], [("a", "b")], (0, 0, 0)),
    ([("a", "b")], [], (1, 1, 0)),  # missing
    ([("a", "b")], [("b", "a")], (1, 1, 1)),  # reversed: one pair, one missing and one extra directed edge
    ([("a", "b"), ("b", "c")], [("a", "b"), ("b", "c"), ("a", "c")], (1, 0, 1)),  # extra
    ([("a", "b"), ("b", "c"), ("c", "d")], [("b", "a"), ("a", "c"), ("d", "e")], (5, 3, 3)),
])
def test_shd_matches_a_hand_count(truth, hypothesis, expected):
    d = structural_hamming_distance(graph_of(truth), graph_of(hypothesis))
    assert (d.shd, d.missing, d.extra) == expected


def test_single_edits_are_every_acyclic_neighbour_at_distance_one():
    truth = load_graph(REPO / "conf/graphs/scm5.yaml")
    edits = single_edits(truth)
    kinds = [e.kind for e in edits]
    assert kinds.count("remove") == 5 and kinds.count("reverse") == 4  # x1 -> x4 cannot flip (x1 -> x2 -> x3 -> x4)
    assert kinds.count("add") == 6  # 5 unconnected pairs, both directions unless that closes a cycle
    for edit in edits:
        graph = apply_edits(truth, [edit], str(edit))
        assert nx.is_directed_acyclic_graph(graph.graph)
        assert structural_hamming_distance(truth, graph).shd == 1
        assert graph.exogenous == truth.exogenous


@pytest.mark.parametrize("distance", [2, 3])
def test_candidates_at_distance_hit_the_requested_shd(distance):
    truth = load_graph(REPO / "conf/graphs/scm5.yaml")
    roots = sum(truth.graph.in_degree(n) == 0 for n in truth.nodes)
    found = candidates_at_distance(truth, distance, 6, np.random.default_rng(0))
    assert len(found) == 6 and len({tuple(sorted(g.graph.edges)) for g in found}) == 6
    for graph in found:
        assert structural_hamming_distance(truth, graph).shd == distance
        assert nx.is_directed_acyclic_graph(graph.graph)
        assert sum(graph.graph.in_degree(n) == 0 for n in graph.nodes) <= roots


def test_listed_candidates_and_their_errors():
    truth = load_graph(REPO / "conf/graphs/scm5.yaml")
    graph = listed_candidate(truth, ListedCandidate(name="alt", remove=[("x3", "x4")], add=[("x2", "x4")]))
    assert set(graph.graph.edges) == set(truth.graph.edges) - {("x3", "x4")} | {("x2", "x4")}
    with pytest.raises(GraphError, match="candidate loop: the graph has a cycle"):
        listed_candidate(truth, ListedCandidate(name="loop", add=[("x4", "x2")]))
    with pytest.raises(GraphError, match="no edge x4 -> x3"):
        listed_candidate(truth, ListedCandidate(name="bad", remove=[("x4", "x3")]))
    with pytest.raises(GraphError, match="unknown node 'x9'"):
        listed_candidate(truth, ListedCandidate(name="bad", add=[("x9", "x3")]))
    with pytest.raises(GraphError, match="already connected"):
        apply_edits(truth, [Edit("add", "x2", "x0")], "bad")


def test_candidate_set_is_unique_and_starts_with_the_truth():
    truth = load_graph(REPO / "conf/graphs/scm5.yaml")
    graphs = build_candidates(truth, CandidateSettings(distances=[2], per_distance=3))
    assert graphs[0].name == "true" and set(graphs[0].graph.edges) == set(truth.graph.edges)
    assert len(graphs) == 1 + 15 + 3
    assert len({tuple(sorted(g.graph.edges)) for g in graphs}) == len(graphs)
    with pytest.raises(ConfigError, match="already taken"):
        build_candidates(truth, CandidateSettings(listed=[ListedCandidate(name="true")]))


def test_drawing_is_a_png(tmp_path):
    truth = load_graph(REPO / "conf/graphs/scm5.yaml")
    graph = apply_edits(truth, [Edit("reverse", "x2", "x3")], "rev")
    path = draw_graph(graph, truth, tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
