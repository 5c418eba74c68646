"""CCGM measurements: reconstruction, intervention fidelity against a known SCM, dependence, graph recovery.

Intervention fidelity (spec 6.6): for every node k and value c of a grid, the generated mean
E_gen[x_j | do(x_k = c)] of every descendant j (in the true graph) is compared with the true
interventional mean, drawn from the SCM itself (`do_scm`), in standardised units (the
training data's sd). **Tolerance**: a model fitted on N observational rows is asked to know
each interventional mean as well as a randomised experiment with N units would measure it:
within 3 standard errors sd_true(x_j | do) / sqrt(N), plus the Monte Carlo error of the M
generated and M true draws used to compare (sd sqrt(2 / M)). The reported tolerance is
that bound averaged over the grid's cells, and is compared with the mean absolute error
(the per-descendant checks use the same bound over that descendant's cells).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import torch
from sklearn.feature_selection import mutual_info_regression

from genlab.causal.candidates import structural_hamming_distance
from genlab.causal.ccgm import CCGM
from genlab.causal.graph import CausalGraph
from genlab.causal.interventions import do_scm, sample
from genlab.causal.scm import StructuralCausalModel

TOLERANCE_STANDARD_ERRORS = 3.0  # z of the tolerance (see the module docstring)


@torch.no_grad()
def reconstruction_error(model: CCGM, inputs: torch.Tensor) -> float:
    """Return the mean squared reconstruction error from the posterior mean.

    Tabular inputs (normalised rows): per variable, standardised units^2. Images: per pixel,
    in [0, 1]^2 units.
    """
    mu, _ = model.encode(inputs)
    return float(((model.decode(mu) - inputs) ** 2).mean())


def intervention_grid(data: np.ndarray, nodes: tuple[str, ...], quantiles: list[float]) -> dict[str, list[float]]:
    """Return {node: values}: each node's `quantiles` in the training rows data [N, n] (raw units)."""
    return {node: np.quantile(data[:, k], quantiles).tolist() for k, node in enumerate(nodes)}


def intervention_fidelity(model: CCGM, scm: StructuralCausalModel, grid: dict[str, list[float]], *, train_rows: int,
                          scale: np.ndarray, num_samples: int, seed: int) -> dict[str, object]:
    """Compare CCGM do() means with the true SCM's for every (node, value, descendant) cell.

    `scale` [n]: the sd of each column in the training data (results are in standardised
    units). Returns `cells` (dicts: node, value, descendant, error, tolerance),
    `mean_abs_error`, `tolerance` (the cells' mean bound), `per_descendant` {node: (MAE,
    tolerance)} and `non_descendants_identical` (bool: every non-descendant column of every
    do() sample equals the observational sample drawn with the same seed, bit for bit).
    """
    graph = scm.graph
    observational = sample(model, num_samples, seed=seed).numpy()
    cells, identical = [], True
    for node, values in grid.items():
        descendants = nx.descendants(graph.graph, node)
        others = [j for j, other in enumerate(graph.nodes) if other not in descendants and other != node]
        for value in values:
            generated = sample(model, num_samples, seed=seed, interventions={node: value}).numpy()
            truth = do_scm(scm, {node: value}).sample(num_samples, np.random.default_rng([seed, 9]))
            identical &= bool(np.array_equal(generated[:, others], observational[:, others]))
            for j, other in enumerate(graph.nodes):
                if other in descendants:
                    spread = truth[:, j].std() / scale[j]
                    bound = TOLERANCE_STANDARD_ERRORS * spread * np.sqrt(1.0 / train_rows + 2.0 / num_samples)
                    error = abs(generated[:, j].mean() - truth[:, j].mean()) / scale[j]
                    cells.append({"node": node, "value": float(value), "descendant": other, "error": float(error),
                                  "tolerance": float(bound)})
    per_descendant = {}
    for other in dict.fromkeys(cell["descendant"] for cell in cells):
        mine = [cell for cell in cells if cell["descendant"] == other]
        per_descendant[other] = (float(np.mean([c["error"] for c in mine])), float(np.mean([c["tolerance"] for c in mine])))
    return {"cells": cells, "mean_abs_error": float(np.mean([c["error"] for c in cells])),
            "tolerance": float(np.mean([c["tolerance"] for c in cells])), "per_descendant": per_descendant,
            "non_descendants_identical": identical}


def dependence(first: np.ndarray, second: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """Return `abs_pearson` in [0, 1] and `mutual_information` (nats, kNN estimate, >= 0) of two columns [N]."""
    pearson = abs(float(np.corrcoef(first, second)[0, 1]))
    information = float(mutual_info_regression(first.reshape(-1, 1), second, random_state=seed)[0])
    return {"abs_pearson": pearson, "mutual_information": information}


def independence_band(num_rows: int) -> float:
    """Return the 95% band of |Pearson r| for N independent rows: tanh(1.96 / sqrt(N - 3)) (Fisher z)."""
    return float(np.tanh(1.96 / np.sqrt(num_rows - 3)))


def learned_graph_distance(model: CCGM, truth: CausalGraph) -> dict[str, int]:
    """Return the SHD, missing (H-) and extra (H+) edges of the model's learned graph against `truth`."""
    learned = truth.with_edges(model.causal.learned_edges(), name="learned")
    distance = structural_hamming_distance(truth, learned)
    return {"shd": distance.shd, "missing_edges": distance.missing, "extra_edges": distance.extra}
