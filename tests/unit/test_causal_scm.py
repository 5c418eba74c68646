"""Tabular SCMs: seeded, the requested SNR, mechanisms that follow the graph, edges that show in the data."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.causal.graph import GraphSpec, build_graph, load_graph
from genlab.causal.scm import SCMSettings, build_scm, edge_effects, scm_dataset
from genlab.causal.splits import SplitSettings, Standardizer, split_columns, tail_split
from genlab.errors import ConfigError
from tests.helpers import REPO

GRAPH = load_graph(REPO / "conf/graphs/scm5.yaml")


def test_tables_are_deterministic_by_seed():
    settings = SCMSettings()
    first = scm_dataset(GRAPH, settings, 250, seed=0)
    assert first.shape == (250, 5)
    np.testing.assert_array_equal(first, scm_dataset(GRAPH, settings, 250, seed=0))
    assert not np.allclose(first, scm_dataset(GRAPH, settings, 250, seed=1))


@pytest.mark.parametrize("form", ["linear", "mlp", "mim"])
@pytest.mark.parametrize("snr_db", [5.0, 2.0])
def test_children_have_the_requested_signal_to_noise_ratio(form, snr_db):
    scm = build_scm(GRAPH, SCMSettings(mechanism=form, snr_db=snr_db), seed=0)
    data = scm.sample(20_000, np.random.default_rng(0))
    for k, mechanism in enumerate(scm.mechanisms):
        signal = mechanism.mean(data)
        if mechanism.parents:
            snr = 10 * np.log10(signal.var() / (data[:, k] - signal).var())
            assert abs(snr - snr_db) < 0.3, (GRAPH.nodes[k], snr)
        else:
            assert abs(data[:, k].std() - 1) < 0.05


def test_parent_power_reference_and_infinite_snr():
    scm = build_scm(GRAPH, SCMSettings(snr_db=5.0, snr_reference="parents"), seed=0)
    data = scm.sample(20_000, np.random.default_rng(0))
    x2 = scm.mechanisms[2]
    noise_power = (data[:, 2] - x2.mean(data)).var()
    assert abs(noise_power / np.mean(data[:, list(x2.parents)] ** 2) - 10 ** -0.5) < 0.02
    exact = build_scm(GRAPH, SCMSettings(snr_db=None), seed=0)
    data = exact.sample(100, np.random.default_rng(0))
    np.testing.assert_array_equal(data[:, 3], exact.mechanisms[3].mean(data))


def test_mechanisms_follow_the_graph_and_its_hints():
    graph = build_graph(GraphSpec(nodes=["a", "b", "c"], edges=[("a", "c"), ("b", "c")], mechanisms={"c": "linear"}))
    scm = build_scm(graph, SCMSettings(mechanism="mlp"), seed=0)
    assert scm.mechanisms[2].form == "linear" and scm.mechanisms[2].parents == (0, 1)
    data = scm.sample(1000, np.random.default_rng(0))
    moved = data.copy()
    moved[:, 1] += 1.0  # b is no parent of a: a's equation ignores it
    np.testing.assert_array_equal(scm.mechanisms[0].mean(moved), scm.mechanisms[0].mean(data))
    assert not np.allclose(scm.mechanisms[2].mean(moved), scm.mechanisms[2].mean(data))


def test_every_edge_shows_in_the_data():
    for seed in range(5):
        scm = build_scm(GRAPH, SCMSettings(), seed=seed)
        data = scm.sample(5000, np.random.default_rng(seed))
        for mechanism in scm.mechanisms:
            if mechanism.parents:
                assert edge_effects(mechanism, data, np.random.default_rng(0)).min() > 0.08
    with pytest.raises(ConfigError, match="min_edge_effect"):
        build_scm(GRAPH, SCMSettings(mechanism="linear", min_edge_effect=0.9), seed=0)


def test_tail_split_and_train_standardisation():
    values = np.arange(100.0)
    assert tail_split(values, 0.75).sum() == 25 and tail_split(values, 0.75)[-1]
    assert tail_split(values, 0.25).sum() == 25 and tail_split(values, 0.25)[0]
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(200, 3))
    scaled = Standardizer.fit(data).transform(data)
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-5)
    assert split_columns(GRAPH.nodes, GRAPH.exogenous, SplitSettings(variables="exogenous")) == [0, 1]
    with pytest.raises(ConfigError, match="unknown variable 'x9'"):
        split_columns(GRAPH.nodes, GRAPH.exogenous, SplitSettings(variables=["x9"]))
