"""Power of the structural hypothesis test over many random true graphs (the papers' protocol, spec 5.5).

For each of `graphs` random DAGs (5-10 nodes, the mechanism families in turn) and each seed, an
SCM is drawn over the DAG and a table sampled from it. The candidates are the true graph, every
single-edge removal and reversal, up to `max_adds` single-edge additions and `per_distance`
random graphs at each of `distances`. Every candidate is trained (one Causal Gen replica per
candidate x seed x split, all in one batched model, with common random numbers: the candidates
of one table share initial weights per node, minibatches and dropout, so a gap between two
candidates comes from their graphs) on two kinds of split of every column (or of `splits`
randomly chosen columns):

- deliberate (`tail`): test = the top quarter of the column (out of distribution);
- random: test = a random quarter of the rows (in distribution), the contrast.

Per split kind the candidates are ranked (genlab.causal.gen.ranking: mean error over seeds, ties
broken toward fewer edges) and the result is whether the true graph ranks first, under two tie
rules: `tested_rank_order` (tied = not significantly worse at `alpha`, the headline) and the
jobs' one-standard-error rule (`rank_order`, reported as `..._se`). Each candidate is also
tested against the truth: a one-sided paired Wilcoxon signed-rank test over seeds (per-seed
error = mean over splits) of H1 "the candidate's error is higher"; the power of an SHD class
is the share of its candidates rejected at `alpha`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field

from genlab.causal.candidates import (
    Edit,
    apply_edits,
    candidates_at_distance,
    single_edits,
    structural_hamming_distance,
)
from genlab.causal.gen.ranking import CandidateResult, rank_order, tested_rank_order, worse_p_value
from genlab.causal.gen.train import TrainSettings, make_replicas, ood_errors
from genlab.causal.graph import CausalGraph, Mechanism
from genlab.causal.random_graphs import random_dag
from genlab.causal.scm import SCMSettings, build_scm, scm_dataset
from genlab.config import StrictModel
from genlab.models.causal import CausalGenSettings
from genlab.runtime import print_progress

SPLIT_KINDS = {"deliberate": "tail", "random": "random"}  # result name -> genlab.causal.splits kind


class PowerSettings(StrictModel):
    """The power study: random true graphs, data per seed, candidates, model and training."""

    graphs: int = Field(21, ge=1)  # random true DAGs (families in turn: 7 each by default)
    min_nodes: int = Field(5, ge=3)
    max_nodes: int = Field(10, ge=3)
    edges_per_node: float = Field(1.2, gt=0)  # edges = round(this x nodes)
    families: list[Mechanism] = Field(default_factory=lambda: ["linear", "mlp", "mim"], min_length=1)
    seeds: int = Field(20, ge=6)  # SCM draws and tables per graph: the paired test's sample (>= 6 can reject at 5%)
    seed_draws: Literal["scm_and_table", "table"] = "scm_and_table"  # per seed: a new SCM and table, or only a table
    splits: int | None = Field(None, ge=1)  # split columns per graph, drawn at random; None = every column (spec 5.5)
    num_samples: int = Field(250, ge=20)  # rows per table (the papers' N = 250)
    snr_db: float | None = 5.0  # child noise (signal power reference)
    quantile: float = Field(0.75, gt=0.5, lt=1)  # tail split: test = rows above this quantile; random: same share
    max_adds: int = Field(3, ge=0)  # single-edge additions drawn per graph (all removals and reversals are kept)
    distances: list[int] = Field(default_factory=lambda: [2, 3])  # also random candidates at these SHDs ...
    per_distance: int = Field(1, ge=0)  # ... this many each
    model: CausalGenSettings = Field(default_factory=lambda: CausalGenSettings(hidden=[8, 8]))
    train: TrainSettings = Field(default_factory=lambda: TrainSettings(epochs=20, lr=1e-2))
    alpha: float = Field(0.05, gt=0, lt=1)  # level of the paired test
    seed: int = 0  # graphs and candidate draws
    processes: int = Field(2, ge=1)  # graphs studied in parallel (one process each, one torch thread)


def study_graph_truth(settings: PowerSettings, index: int) -> CausalGraph:
    """Return the `index`-th random true graph of the study (its family is families[index % len])."""
    rng = np.random.default_rng([settings.seed, index])
    nodes = int(rng.integers(settings.min_nodes, settings.max_nodes + 1))
    family = settings.families[index % len(settings.families)]
    return random_dag(nodes, round(settings.edges_per_node * nodes), family, rng, f"g{index:02d}-{family}")


def power_candidates(truth: CausalGraph, settings: PowerSettings, rng: np.random.Generator) -> list[CausalGraph]:
    """Return the truth (named `true`) and its competitors: removals, reversals, some additions, farther graphs."""
    edits = single_edits(truth)
    adds = [e for e in edits if e.kind == "add"]
    picked = [adds[k] for k in sorted(rng.choice(len(adds), size=min(settings.max_adds, len(adds)), replace=False))]
    chosen: list[Edit] = [e for e in edits if e.kind != "add"] + picked
    graphs = [truth.with_edges(truth.edges, "true"), *(apply_edits(truth, [edit], str(edit)) for edit in chosen)]
    for distance in settings.distances:
        seen = {tuple(sorted(g.graph.edges)) for g in graphs}
        graphs += candidates_at_distance(truth, distance, settings.per_distance, rng, exclude=seen)
    return graphs


def score_candidates(candidates: list[CausalGraph], truth: CausalGraph, tables: dict[int, np.ndarray],
                     columns: list[int], model: CausalGenSettings, train: TrainSettings, quantile: float, kind: str,
                     on_epoch: Callable[[int, np.ndarray], None] | None = None) -> list[CandidateResult]:
    """Train one Causal Gen replica per candidate x seed x split column (one batched model); return each
    candidate's errors [seeds, splits] on the `kind` splits (tail or random), in candidate order.
    `on_epoch(epoch, train losses [R])` is called after each epoch (progress)."""
    replicas = make_replicas(tables, columns, quantile, kind)
    priors = np.stack([g.structural_prior() for g in candidates for _ in replicas])
    errors = ood_errors(model, train, priors, truth.exogenous_mask(), replicas * len(candidates), on_epoch)
    shape = (len(candidates), len(tables), len(columns))
    ood, train = errors["ood_mse"].reshape(shape), errors["train_mse"].reshape(shape)
    return [CandidateResult(g.name, g, structural_hamming_distance(truth, g), ood[c], train[c])
            for c, g in enumerate(candidates)]


@dataclass(frozen=True)
class StudyGraph:
    """Everything drawn for graph `index` of a study: the truth, its candidates, one table per seed, split columns."""

    truth: CausalGraph
    candidates: list[CausalGraph]
    tables: dict[int, np.ndarray]
    columns: list[int]


def study_graph_setup(settings: PowerSettings, index: int) -> StudyGraph:
    """Return graph `index`'s truth, candidates, tables (float64 [N, n] per seed) and split columns (all seeded)."""
    truth = study_graph_truth(settings, index)
    candidates = power_candidates(truth, settings, np.random.default_rng([settings.seed, index, 1]))
    scm = SCMSettings(mechanism=truth.mechanisms[truth.nodes[0]], snr_db=settings.snr_db)
    seeds = [1000 * index + s for s in range(settings.seeds)]
    if settings.seed_draws == "scm_and_table":
        tables = {seed: scm_dataset(truth, scm, settings.num_samples, seed) for seed in seeds}
    else:  # one SCM per graph (the first seed's), fresh rows per seed
        fixed = build_scm(truth, scm, seeds[0])
        tables = {seed: fixed.sample(settings.num_samples, np.random.default_rng([seed, 2])) for seed in seeds}
    columns = list(range(len(truth.nodes))) if settings.splits is None else sorted(
        np.random.default_rng([settings.seed, index, 2]).choice(
            len(truth.nodes), size=min(settings.splits, len(truth.nodes)), replace=False).tolist())
    return StudyGraph(truth, candidates, tables, columns)


def study_graph(settings: PowerSettings, index: int) -> dict[str, Any]:
    """Train every candidate of graph `index` on both split kinds; return the truth's rank and each test."""
    torch.set_num_threads(1)
    setup = study_graph_setup(settings, index)
    truth, candidates, tables, columns = setup.truth, setup.candidates, setup.tables, setup.columns
    distances = [structural_hamming_distance(truth, g) for g in candidates]
    result: dict[str, Any] = {"index": index, "name": truth.name, "nodes": len(truth.nodes), "edges": truth.num_edges,
                              "family": truth.mechanisms[truth.nodes[0]], "num_candidates": len(candidates),
                              "true_edges": [list(e) for e in truth.edges],
                              "candidates": [{"name": g.name, "shd": d.shd, "missing": d.missing, "extra": d.extra}
                                             for g, d in zip(candidates, distances)]}
    for name, kind in SPLIT_KINDS.items():
        results = score_candidates(candidates, truth, tables, columns, settings.model, settings.train,
                                   settings.quantile, kind)
        order = [r.name for r in tested_rank_order(results, settings.alpha)]
        truth_errors = results[0].per_seed
        result[f"true_rank_{name}"] = order.index("true") + 1
        result[f"true_rank_se_{name}"] = [r.name for r in rank_order(results)].index("true") + 1
        result[f"first_{name}"] = order[0]
        for row, candidate in zip(result["candidates"], results):
            row[f"p_{name}"] = None if candidate.name == "true" else worse_p_value(candidate.per_seed, truth_errors)
            row[f"gap_{name}"] = float((candidate.per_seed - truth_errors).mean())
    return result


def _rate(values: list[bool]) -> float | None:
    """Return the share of True in `values` (None when empty)."""
    return float(np.mean(values)) if values else None


def aggregate(graphs: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """Return the study's rates: true graph first per split kind (overall and per family), power by SHD class."""
    summary: dict[str, Any] = {"graphs": len(graphs)}
    families = sorted({g["family"] for g in graphs})
    for name in SPLIT_KINDS:
        summary[f"true_graph_first_rate_{name}"] = _rate([g[f"true_rank_{name}"] == 1 for g in graphs])
        summary[f"true_graph_first_rate_{name}_se_rule"] = _rate([g.get(f"true_rank_se_{name}") == 1 for g in graphs])
        summary[f"true_graph_first_rate_{name}_by_family"] = {
            family: _rate([g[f"true_rank_{name}"] == 1 for g in graphs if g["family"] == family]) for family in families}
        rows = [c for g in graphs for c in g["candidates"] if c[f"p_{name}"] is not None]
        summary[f"power_by_shd_{name}"] = {str(h): _rate([c[f"p_{name}"] < alpha for c in rows if c["shd"] == h])
                                           for h in sorted({c["shd"] for c in rows})}
        summary[f"power_missing_or_reversed_{name}"] = _rate([c[f"p_{name}"] < alpha for c in rows if c["missing"] > 0])
        summary[f"power_extra_only_{name}"] = _rate([c[f"p_{name}"] < alpha for c in rows if c["missing"] == 0])
    summary["candidates_by_shd"] = {str(h): sum(c["shd"] == h for g in graphs for c in g["candidates"])
                                    for h in sorted({c["shd"] for g in graphs for c in g["candidates"]})}
    return summary


def run_power_study(settings: PowerSettings, log: Path | None = None, indices: list[int] | None = None,
                    done: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Study every graph (in `processes` worker processes); return the aggregate rates plus `per_graph` and `seconds`.

    With `log`, each graph's result is appended to that file as one JSON line as soon as it is done
    (so a run cut short still leaves the graphs it finished). `done`: results of graphs already
    studied with the same settings (read back from such a log); they are kept, not studied again.
    `indices` studies only those graphs (default: all `graphs`), e.g. to split a study over machines.
    """
    start = time.time()
    indices = list(range(settings.graphs)) if indices is None else indices
    kept = [g for g in done or [] if g["index"] in indices]
    todo = [index for index in indices if index not in {g["index"] for g in kept}]
    graphs = list(kept)

    def finish(graph: dict[str, Any]) -> None:
        graphs.append(graph)
        if log is not None:
            with log.open("a") as handle:
                handle.write(json.dumps(graph) + "\n")
        print_progress(f"power study: {len(graphs)}/{len(indices)} graphs: {graph['name']} true rank "
                       f"{graph['true_rank_deliberate']} (deliberate), {graph['true_rank_random']} (random)")

    if settings.processes == 1:
        for index in todo:
            finish(study_graph(settings, index))
    elif todo:
        with ProcessPoolExecutor(settings.processes, mp_context=get_context("spawn")) as pool:
            for future in as_completed([pool.submit(study_graph, settings, index) for index in todo]):
                finish(future.result())
    graphs.sort(key=lambda g: indices.index(g["index"]))
    return {**aggregate(graphs, settings.alpha), "seeds": settings.seeds, "alpha": settings.alpha,
            "seconds": round(time.time() - start, 1), "per_graph": graphs}
