"""CCGM measurements: reconstruction, intervention fidelity against a known SCM, dependence, concept MIC/TIC,
graph recovery.

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
from genlab.causal.ccgm.model import CCGM
from genlab.causal.ccgm.sampling import counterfactual, sample
from genlab.causal.dependence import hsic
from genlab.causal.graph import CausalGraph
from genlab.causal.interventions import do_scm
from genlab.causal.mic import information_coefficients
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


@torch.no_grad()
def counterfactual_fidelity(model: CCGM, scm: StructuralCausalModel, grid: dict[str, list[float]], *,
                            num_rows: int, seed: int) -> dict[str, float]:
    """Compare the model's counterfactuals with the true SCM's on `num_rows` fresh rows whose noise is known.

    For each node k with descendants and value c of `grid`: the true counterfactual is the SCM
    under do(k = c) fed the rows' own noise (`from_noise`); the model's is abduct-act-predict
    (`counterfactual`). Returns `counterfactual_error`: mean |model - truth| over the descendants'
    cells, and `counterfactual_change`: mean |factual - truth| (what a model that changed nothing
    would score), both in the rows' standardised units.
    """
    rows, noise = scm.sample_with_noise(num_rows, np.random.default_rng([seed, 12]))
    scale = rows.std(axis=0)
    inputs = torch.as_tensor(rows, dtype=torch.float32)
    if model.config.data == "tabular":
        inputs = model.normalise(inputs)
    errors, changes = [], []
    for node, values in grid.items():
        descendants = [scm.graph.nodes.index(d) for d in nx.descendants(scm.graph.graph, node)]
        for value in values if descendants else []:
            truth = do_scm(scm, {node: value}).from_noise(noise)
            predicted = counterfactual(model, inputs, {node: value})[1].double().numpy()
            errors.append((np.abs(predicted - truth)[:, descendants] / scale[descendants]).mean())
            changes.append((np.abs(rows - truth)[:, descendants] / scale[descendants]).mean())
    return {"counterfactual_error": float(np.mean(errors)), "counterfactual_change": float(np.mean(changes))}


def dependence(first: np.ndarray, second: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """Return the dependence of two columns [N]: `abs_pearson` in [0, 1], `mutual_information` (nats, >= 0).

    `mutual_information` is a kNN estimate; `hsic` (normalised, in [0, 1]) and `hsic_p_value`
    (in [0, 1]; small rejects independence) are the Gaussian-kernel HSIC test of
    genlab.causal.dependence (on at most its HSIC_MAX_ROWS seeded rows).
    """
    pearson = abs(float(np.corrcoef(first, second)[0, 1]))
    information = float(mutual_info_regression(first.reshape(-1, 1), second, random_state=seed)[0])
    kernel = hsic(first, second, seed=seed)
    return {"abs_pearson": pearson, "mutual_information": information, "hsic": kernel["hsic"],
            "hsic_p_value": kernel["hsic_p_value"]}


@torch.no_grad()
def concept_information(model: CCGM, inputs: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
    """Return MIC and TIC x 100 (in [0, 100]) of each learned concept against its ground-truth factor.

    The concept of node j is the mean over its k latent dims of the posterior mean of z_j
    for `inputs`; its factor is column j of `labels` [N, n] (CausalVAE's measure, spec 2.3;
    minepy's mic_approx with alpha 0.6, c 15; TIC normalised by the number of grid sizes).
    Keys: `mic_<node>`, `tic_<node>` and their means over nodes `mic`, `tic`.
    """
    concepts = model.encode(inputs)[0].mean(dim=-1).double().numpy()
    results: dict[str, float] = {}
    for j, node in enumerate(model.graph.nodes):
        scores = information_coefficients(concepts[:, j], labels[:, j])
        results[f"mic_{node}"], results[f"tic_{node}"] = 100.0 * scores.mic, 100.0 * scores.tic
    results["mic"] = float(np.mean([results[f"mic_{node}"] for node in model.graph.nodes]))
    results["tic"] = float(np.mean([results[f"tic_{node}"] for node in model.graph.nodes]))
    return results


def independence_band(num_rows: int) -> float:
    """Return the 95% band of |Pearson r| for N independent rows: tanh(1.96 / sqrt(N - 3)) (Fisher z)."""
    return float(np.tanh(1.96 / np.sqrt(num_rows - 3)))


def learned_graph_distance(model: CCGM, truth: CausalGraph) -> dict[str, int]:
    """Return the SHD, missing (H-) and extra (H+) edges of the model's learned graph against `truth`."""
    learned = truth.with_edges(model.causal.learned_edges(), name="learned")
    distance = structural_hamming_distance(truth, learned)
    return {"shd": distance.shd, "missing_edges": distance.missing, "extra_edges": distance.extra}
