"""Data generation with Causal Gen and Causal Variational Gen (spec 5.5, "data synthesis"), and its baselines.

- `ancestral_sample`: a fitted causal model (one replica) generates rows in topological order
  of its graph: exogenous nodes drawn from their empirical marginals (independently of each
  other, as the DAG says), each endogenous node x_j = f_j(generated parents) + r_j with r_j
  resampled from node j's train residuals (**[choice]** of the spec). f_j is the model's
  prediction of column j, which depends only on j's parents (Causal Gen: theta_j of the masked
  row; Causal Variational Gen: dec_j(theta_j(enc(parents)))). do(x_k = c) sets column k to c
  and its descendants are computed from it.
- The fully connected baseline is the complete DAG over the column order (exogenous columns
  first): every endogenous node is generated from all columns before it. It is not a causal
  model: its do() is right only if the column order happens to be causal.
- `vae_sample`: the whole-row VAE decodes z ~ N(0, I); it has no do(), so its answer to
  "do(x_k = c)" is conditioning, E[x_j | x_k near c] (`conditional_mean`), the non-causal reading.

Units are the training split's standardised units throughout.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import torch
from torch import nn


def complete_dag_prior(exogenous: np.ndarray) -> np.ndarray:
    """Return S float32 [n, n] of the complete DAG over the column order, exogenous columns first (see module)."""
    rank = np.argsort(np.argsort(~exogenous, kind="stable"), kind="stable")  # position of each column in the order
    prior = (rank[:, None] < rank[None, :]).astype(np.float32)
    prior[:, exogenous] = 0.0
    return prior + np.diag(exogenous.astype(np.float32))


def topological_columns(prior: np.ndarray, exogenous: np.ndarray) -> list[int]:
    """Return the endogenous columns in a topological order of the graph S - diag (ties by column)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(exogenous)))
    graph.add_edges_from((i, j) for i, j in zip(*np.nonzero(prior)) if i != j and not exogenous[j])
    return [j for j in nx.lexicographical_topological_sort(graph) if not exogenous[j]]


@torch.no_grad()
def _predict(model: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """Return the model's prediction of rows [B, n] (one replica) as [B, n]."""
    return model.predict(rows.unsqueeze(0))[0]


@torch.no_grad()
def ancestral_sample(model: nn.Module, prior: np.ndarray, exogenous: np.ndarray, train: np.ndarray, num_samples: int,
                     rng: np.random.Generator, interventions: dict[int, float] | None = None) -> np.ndarray:
    """Return `num_samples` generated rows float64 [M, n] (standardised units) from a one-replica causal model.

    `train` [N, n]: the standardised rows the model was fitted on (marginals and residuals);
    `interventions` {column: value}: do(column = value), standardised units.
    """
    interventions = interventions or {}
    rows = torch.as_tensor(train, dtype=torch.float32)
    residuals = (rows - _predict(model, rows)).numpy()
    x = torch.zeros(num_samples, len(exogenous))
    for j in np.flatnonzero(exogenous):
        x[:, j] = torch.as_tensor(train[rng.integers(len(train), size=num_samples), j])
    for k, value in interventions.items():
        x[:, k] = value
    for j in topological_columns(prior, exogenous):
        if j not in interventions:
            noise = torch.as_tensor(residuals[rng.integers(len(train), size=num_samples), j])
            x[:, j] = _predict(model, x)[:, j] + noise
    return x.double().numpy()


@torch.no_grad()
def vae_sample(model: nn.Module, num_samples: int, generator: torch.Generator) -> np.ndarray:
    """Return rows float64 [M, n] decoded from z ~ N(0, I) by replica 0 of a RowVAE (standardised units)."""
    z = torch.randn(1, num_samples, model.latent, generator=generator)
    return model.decoder(z)[0].double().numpy()


def conditional_mean(samples: np.ndarray, column: int, value: float, bandwidth: float = 0.2) -> np.ndarray:
    """Return E[x | x_column near value] [n]: the Gaussian-kernel (width `bandwidth`) weighted mean of samples."""
    weights = np.exp(-0.5 * ((samples[:, column] - value) / bandwidth) ** 2)
    return (weights[:, None] * samples).sum(axis=0) / max(weights.sum(), 1e-12)


def energy_distance(first: np.ndarray, second: np.ndarray, *, max_rows: int = 1000, seed: int = 0) -> float:
    """Return the energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (>= 0; 0 iff equal laws) of two samples [N, n].

    Euclidean norms; samples longer than `max_rows` are subsampled (seeded). The V-statistic.
    """
    rng = np.random.default_rng(seed)
    x, y = (a[rng.choice(len(a), size=max_rows, replace=False)] if len(a) > max_rows else a for a in (first, second))

    def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).mean())

    return 2.0 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y)
