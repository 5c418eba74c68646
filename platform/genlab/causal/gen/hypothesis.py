"""The structural hypothesis test: candidate graphs as Tune trials, ranked by out-of-distribution error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from genlab.causal.candidates import (
    apply_edits,
    candidates_at_distance,
    listed_candidate,
    single_edits,
    structural_hamming_distance,
)
from genlab.causal.drawing import draw_graph
from genlab.causal.gen.config import CandidateSettings, HypothesisConfig
from genlab.causal.gen.ranking import CandidateResult, summarize
from genlab.causal.gen.report import console_table, csv_text, markdown_table
from genlab.causal.gen.runner import causal_job
from genlab.causal.gen.trials import trial_spec
from genlab.causal.graph import CausalGraph, resolve_graph
from genlab.causal.job import write_reports
from genlab.errors import ConfigError, GenlabError

TRUE_NAME = "true"
PARENT_METRICS = ("true_graph_rank", "num_candidates", "true_beats_missing_or_reversed")
RUN_METRICS = {"rank": "rank", "ood_mse_mean": "ood_mse", "ood_mse_se": "ood_mse_se", "gap_to_true": "gap_to_true"}
COLUMNS = ["rank", "name", "ood_mse", "ood_mse_se", "gap_to_true", "gap_to_true_se", "p_true_better", "num_edges",
           "shd", "missing", "extra", "train_mse"]


def build_candidates(truth: CausalGraph, settings: CandidateSettings) -> list[CausalGraph]:
    """Return the true graph (named `true`), the listed candidates, the generated ones; each edge set once.

    When two candidates have the same edges, the first keeps its place (so listed names win
    over generated ones); a listed name used twice is a ConfigError.
    """
    graphs = [truth.with_edges(truth.edges, TRUE_NAME)]
    for listed in settings.listed:
        if listed.name in {g.name for g in graphs}:
            raise ConfigError(f"config key candidates.listed: name {listed.name!r} is already taken")
        graphs.append(listed_candidate(truth, listed))
    if settings.single_edits:
        graphs += [apply_edits(truth, [edit], str(edit)) for edit in single_edits(truth)]
    rng = np.random.default_rng(settings.seed)
    for distance in settings.distances:
        seen = {tuple(sorted(g.graph.edges)) for g in graphs}
        graphs += candidates_at_distance(truth, distance, settings.per_distance, rng, exclude=seen)
    unique: dict[tuple[tuple[str, str], ...], CausalGraph] = {}
    for graph in graphs:
        unique.setdefault(tuple(sorted(graph.graph.edges)), graph)
    return list(unique.values())


def run_hypothesis_test(cfg: HypothesisConfig, out_dir: Path) -> dict[str, Any]:
    """Train every candidate (one Tune trial each), rank them, write reports; return summary.json's content.

    The summary has `true_graph_rank` (1 = first), `num_candidates`, `true_beats_missing_or_reversed`
    (fraction of seeds), the ranking rows and `all_finished`.
    """
    truth = resolve_graph(cfg.graph)
    candidates = build_candidates(truth, cfg.candidates)
    with causal_job(cfg, truth, out_dir, "hypothesis") as job:
        print(f"[genlab] {len(candidates)} candidate graphs, model {cfg.model.kind}")
        specs, distances = [], {}
        for index, graph in enumerate(candidates):
            distances[graph.name] = structural_hamming_distance(job.graph, graph)
            drawing = draw_graph(graph, job.graph, job.out_dir / "graphs" / f"{index:02d}-{_file_name(graph.name)}.png")
            params = {"candidate": graph.name, "edges": " ".join(f"{a}->{b}" for a, b in graph.edges),
                      "num_edges": str(graph.num_edges), "shd": str(distances[graph.name].shd),
                      "missing": str(distances[graph.name].missing), "extra": str(distances[graph.name].extra)}
            specs.append(trial_spec(graph.name, cfg.model, graph.structural_prior(), params, drawing))
        job.run.client.log_artifact(job.run.run_id, specs[0]["drawing"], "graph")
        callback = job.run_trials(specs)
        errors = callback.replica_errors
        results = [CandidateResult(g.name, g, distances[g.name], job.per_seed(errors[g.name]["ood_mse"]),
                                   job.per_seed(errors[g.name]["train_mse"]))
                   for g in candidates if g.name in callback.finished]
        if TRUE_NAME not in callback.finished:
            raise GenlabError("the true graph's trial failed; see its MLflow run for the error")
        summary = {**summarize(results, TRUE_NAME), "all_finished": len(results) == len(candidates),
                   "seeds": job.seeds, "mlflow_parent_run_id": job.run.run_id}
        ranking = summary["ranking"]
        for row in ranking:
            job.log_row(callback.run_ids[row["name"]], row, RUN_METRICS)
        job.log_row(job.run.run_id, summary, {key: key for key in PARENT_METRICS})
        job.run.finish_as(summary["all_finished"])
        print(console_table(ranking, COLUMNS))
        print(f"\n[genlab] true graph rank {summary['true_graph_rank']} of {summary['num_candidates']}; beats every "
              f"missing/reversed-edge candidate in {summary['true_beats_missing_or_reversed']} of the seeds")
        write_reports(job.run, job.out_dir, summary, {"ranking.md": markdown_table(ranking, COLUMNS),
                                                       "ranking.csv": csv_text(ranking, COLUMNS + ["edges"])})
    return summary


def _file_name(name: str) -> str:
    """`name` with every character other than letters, digits, '-' and '_' replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)
