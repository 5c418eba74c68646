"""Tabular structural causal models over a declared DAG (stand-in for the papers' private data).

Nodes are sampled in topological order: `x_j = f_j(u_pa(j)) + sigma_j * noise_j` (spec section 4).
Nodes without parents are pure noise of scale 1. Mechanisms (per node: the graph's hint,
else the settings' default), weights drawn uniformly from +-[low, high]:

    linear: u_pa @ w
    mlp:    sigmoid(u_pa @ W1) @ W2            (hidden_units wide)
    mim:    tanh(u_pa @ w1) + cos(u_pa @ w2) + sin(u_pa @ w3)

u_pa are the parents standardised with their mean and sd on a reference sample (**choice**:
the papers' code feeds raw parents, `standardize_parents: false`; then a parent with a large
mean saturates the sigmoid of `mlp`, or one with a tiny spread has no visible effect, and
an edge of the graph can vanish from the data). Weights are also redrawn until every edge
has an effect of at least `min_edge_effect` (see `edge_effects`; the papers' code keeps any
draw, so a random draw can leave an edge with a ~1% share of its child's signal that no
test could detect at N = 250).

Noise scale of a child at signal-to-noise ratio SNR (dB): `sigma_j^2 = P_j * 10^(-SNR/10)`,
where P_j is the mean square of the parent matrix (`snr_reference: parents`, the papers'
code) or the variance of f_j(x_pa) (`signal`). P_j is measured once on a reference sample,
so the SCM is fixed before any data are drawn from it; SNR None (infinite) = no child noise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from pydantic import Field

from genlab.causal.graph import CausalGraph, Mechanism
from genlab.config import StrictModel
from genlab.errors import ConfigError

REFERENCE_SAMPLES = 5_000  # rows used to measure the parent / signal power and edge effects of each node
MAX_DRAWS = 200  # weight draws per node before min_edge_effect is declared unreachable


class SCMSettings(StrictModel):
    """How a tabular SCM's mechanisms and noise are drawn over a graph."""

    snr_db: float | None = 5.0  # signal-to-noise ratio of every child, dB; None = infinite (no noise)
    snr_reference: Literal["parents", "signal"] = "signal"  # power P_j: parent mean square, or var f_j(pa)
    mechanism: Mechanism = "mlp"  # functional form of nodes without a hint in the graph file
    noise: Literal["gaussian", "uniform", "gumbel"] = "gaussian"  # noise family, scaled to unit variance
    hidden_units: int = Field(100, ge=1)  # width of the `mlp` mechanism
    weight_low: float = Field(0.5, gt=0)  # mechanism weights are uniform on +-[weight_low, weight_high]
    weight_high: float = Field(2.0, gt=0)
    standardize_parents: bool = True  # mechanisms see parents standardised (reference mean and sd); False = raw
    min_edge_effect: float = Field(0.1, ge=0, lt=1)  # redraw weights until every edge's effect (edge_effects) >= this


@dataclass(frozen=True)
class NodeMechanism:
    """One node's structural equation: parents' column indices, their centre and spread, form, weights, noise."""

    parents: tuple[int, ...]
    form: str
    weights: tuple[np.ndarray, ...]
    centre: np.ndarray
    spread: np.ndarray
    noise_scale: float

    def mean(self, data: np.ndarray) -> np.ndarray:
        """Return f_j(u_pa) float64 [N] for rows `data` [N, n] (0 for a node without parents)."""
        if not self.parents:
            return np.zeros(len(data))
        x = (data[:, self.parents] - self.centre) / self.spread
        if self.form == "linear":
            return x @ self.weights[0]
        if self.form == "mlp":
            return (1.0 / (1.0 + np.exp(-(x @ self.weights[0])))) @ self.weights[1]
        return np.tanh(x @ self.weights[0]) + np.cos(x @ self.weights[1]) + np.sin(x @ self.weights[2])


@dataclass(frozen=True)
class StructuralCausalModel:
    """A fixed SCM: a graph and one mechanism per node (in node order)."""

    graph: CausalGraph
    mechanisms: tuple[NodeMechanism, ...]
    noise: str

    def sample(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Return `num_samples` rows float64 [N, n], columns in node order, sampled ancestrally."""
        return self.sample_with_noise(num_samples, rng)[0]

    def sample_with_noise(self, num_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return (rows, unit noise), float64 [N, n] each: the noise is what `from_noise` turns back into the rows."""
        noise = np.zeros((num_samples, len(self.graph.nodes)))
        for node in self.graph.topological_order():
            noise[:, self.graph.nodes.index(node)] = _noise(self.noise, num_samples, rng)
        return self.from_noise(noise), noise

    def from_noise(self, noise: np.ndarray) -> np.ndarray:
        """Return the rows float64 [N, n] the unit noise [N, n] gives: x_j = f_j(x_pa) + sigma_j noise_j in
        topological order. On a do_scm copy with the factual noise this is the counterfactual."""
        data = np.zeros_like(noise)
        for node in self.graph.topological_order():
            k = self.graph.nodes.index(node)
            mechanism = self.mechanisms[k]
            data[:, k] = mechanism.mean(data) + mechanism.noise_scale * noise[:, k]
        return data


def _noise(family: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance noise float64 [size] of `family`."""
    if family == "uniform":
        return rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), size)
    if family == "gumbel":
        return (rng.gumbel(0.0, 1.0, size) - np.euler_gamma) / (np.pi / np.sqrt(6.0))
    return rng.standard_normal(size)


def _signed_uniform(rng: np.random.Generator, shape: tuple[int, ...], settings: SCMSettings) -> np.ndarray:
    """Weights float64 `shape`, uniform on [-high, -low] U [low, high]."""
    magnitude = rng.uniform(settings.weight_low, settings.weight_high, shape)
    return magnitude * rng.choice([-1.0, 1.0], shape)


def edge_effects(mechanism: NodeMechanism, reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return each parent's effect on f_j, float [p]: E[(f(u) - f(u, parent shuffled))^2] / (2 var f).

    For an additive mechanism with independent parents this is the parent's share of var f
    (the effects then sum to 1); a value near 0 means the edge barely shows in the data.
    """
    signal = mechanism.mean(reference)
    effects = []
    for parent in mechanism.parents:
        shuffled = reference.copy()
        shuffled[:, parent] = rng.permutation(shuffled[:, parent])
        effects.append(np.mean((signal - mechanism.mean(shuffled)) ** 2) / (2.0 * signal.var() + 1e-12))
    return np.array(effects)


def _draw_mechanism(graph: CausalGraph, node: str, settings: SCMSettings, reference: np.ndarray,
                    rng: np.random.Generator) -> NodeMechanism:
    """Draw node's mechanism (noise scale 0) until every parent's edge effect reaches settings.min_edge_effect."""
    parents = tuple(graph.nodes.index(p) for p in graph.parents(node))
    form = graph.mechanisms.get(node, settings.mechanism)
    p, h = len(parents), settings.hidden_units
    shapes = {"linear": [(p,)], "mlp": [(p, h), (h,)], "mim": [(p,), (p,), (p,)]}[form]
    centre, spread = np.zeros(p), np.ones(p)
    if settings.standardize_parents and parents:
        centre, spread = reference[:, parents].mean(axis=0), reference[:, parents].std(axis=0) + 1e-12
    for _ in range(MAX_DRAWS):
        weights = tuple(_signed_uniform(rng, shape, settings) for shape in shapes)
        mechanism = NodeMechanism(parents=parents, form=form, weights=weights, centre=centre, spread=spread,
                                  noise_scale=0.0)
        if not parents or edge_effects(mechanism, reference, rng).min() >= settings.min_edge_effect:
            return mechanism
    raise ConfigError(f"config key data.scm.min_edge_effect: no {form} mechanism for node {node!r} in {MAX_DRAWS} "
                      f"draws gives every parent an effect >= {settings.min_edge_effect}; lower it")


def build_scm(graph: CausalGraph, settings: SCMSettings, seed: int) -> StructuralCausalModel:
    """Return an SCM over `graph` with mechanism weights and noise scales drawn from `seed`."""
    rng = np.random.default_rng([seed, 0])
    reference_rng = np.random.default_rng([seed, 1])
    mechanisms: list[NodeMechanism | None] = [None] * len(graph.nodes)
    reference = np.zeros((REFERENCE_SAMPLES, len(graph.nodes)))
    for node in graph.topological_order():
        k = graph.nodes.index(node)
        mechanism = _draw_mechanism(graph, node, settings, reference, rng)
        signal = mechanism.mean(reference)
        if not mechanism.parents:
            scale = 1.0
        elif settings.snr_db is None:
            scale = 0.0
        else:
            parents = list(mechanism.parents)
            power = np.mean(reference[:, parents] ** 2) if settings.snr_reference == "parents" else np.var(signal)
            scale = float(np.sqrt(power * 10.0 ** (-settings.snr_db / 10.0)))
        mechanisms[k] = replace(mechanism, noise_scale=scale)
        reference[:, k] = signal + scale * _noise(settings.noise, REFERENCE_SAMPLES, reference_rng)
    return StructuralCausalModel(graph=graph, mechanisms=tuple(mechanisms), noise=settings.noise)


def scm_dataset(graph: CausalGraph, settings: SCMSettings, num_samples: int, seed: int) -> np.ndarray:
    """Return `num_samples` rows float64 [N, n] from the SCM that `seed` draws over `graph`."""
    return build_scm(graph, settings, seed).sample(num_samples, np.random.default_rng([seed, 2]))
