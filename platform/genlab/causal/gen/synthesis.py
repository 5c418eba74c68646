"""`jobs/causal_generate.py`: how well Causal Gen and Causal Variational Gen generate, against the baselines.

Per seed, an SCM is drawn over the true graph and a table sampled from it; a random quarter of
the rows is held out and the rest (standardised) trains four one-replica models, each at its own
learning rate: Causal Gen and Causal Variational Gen over the true graph, the fully connected
(complete DAG over the column order) predictor and the whole-row VAE (genlab.causal.gen.generation).
Two measures, in the train split's standardised units, mean and s.e. over seeds:

- `energy_distance` of `num_generated` generated rows to the held-out rows (lower is better);
  the row `true_scm` is a fresh sample of the true SCM, the floor set by the held-out sample's size;
- `do_mean_error`: |E_model[x_j | do(x_k = c)] - E_true[x_j | do(x_k = c)]| averaged over every
  node k with descendants, c at `quantiles` of k's train values, and every descendant j of k in the
  true graph (the VAE answers by conditioning on x_k near c).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch
from pydantic import Field

from genlab.causal.drawing import draw_graph
from genlab.causal.gen.config import DataSettings
from genlab.causal.gen.generation import (
    ancestral_sample,
    complete_dag_prior,
    conditional_mean,
    energy_distance,
    vae_sample,
)
from genlab.causal.gen.ranking import mean_and_se
from genlab.causal.gen.report import console_table, markdown_table
from genlab.causal.gen.train import Replica, TrainSettings, fit
from genlab.causal.graph import CausalGraph, GraphSpec, resolve_graph
from genlab.causal.interventions import do_scm
from genlab.causal.job import job_run, write_reports
from genlab.causal.scm import build_scm
from genlab.causal.splits import Standardizer, random_split
from genlab.config import StrictModel
from genlab.models.causal import CausalGenSettings, CausalVariationalGenSettings, VAESettings, build_model

MODELS = ("causal_gen", "causal_variational_gen", "fully_connected", "vae")
COLUMNS = ["model", "energy_distance", "energy_distance_se", "do_mean_error", "do_mean_error_se"]


class GenerationModels(StrictModel):
    """The four generators, each with its own learning rate (`lr`; None = train.lr)."""

    causal_gen: CausalGenSettings = Field(default_factory=CausalGenSettings)
    causal_variational_gen: CausalVariationalGenSettings = Field(default_factory=CausalVariationalGenSettings)
    fully_connected: CausalGenSettings = Field(default_factory=CausalGenSettings)  # over the complete DAG
    vae: VAESettings = Field(default_factory=lambda: VAESettings(hidden=[64, 64]))


class GenerateConfig(StrictModel):
    """`jobs/causal_generate.py`: generation and do() quality of the causal models and the baselines."""

    experiment: str = "causal-generate"
    graph: str | GraphSpec = "conf/graphs/scm5.yaml"  # the true graph
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=2)
    data: DataSettings = Field(default_factory=DataSettings)  # kind scm only
    test_share: float = Field(0.25, gt=0, lt=1)  # held-out rows
    models: GenerationModels = Field(default_factory=GenerationModels)
    train: TrainSettings = Field(default_factory=TrainSettings)  # a model's own lr replaces train.lr
    num_generated: int = Field(2000, ge=100)  # generated rows per model and seed (energy distance, do() means)
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9], min_length=1)  # do() values per node


def _fit(name: str, cfg: GenerateConfig, graph: CausalGraph, replica: Replica) -> tuple[torch.nn.Module, np.ndarray]:
    """Return model `name` fitted on the replica's train rows, and the prior its generation follows."""
    exogenous = graph.exogenous_mask()
    prior = complete_dag_prior(exogenous) if name == "fully_connected" else graph.structural_prior()
    settings = getattr(cfg.models, name)
    torch.manual_seed(replica.seed)
    model = build_model(settings, prior, exogenous, seeds=[replica.seed])
    fit(model, [replica], cfg.train.model_copy(update={"lr": settings.lr or cfg.train.lr}))
    return model, prior


def _seed_scores(cfg: GenerateConfig, graph: CausalGraph, seed: int) -> dict[str, dict[str, float]]:
    """Return {model: {energy_distance, do_mean_error}} for one seed (plus the `true_scm` floor's energy distance)."""
    scm = build_scm(graph, cfg.data.scm, seed)
    table = scm.sample(cfg.data.num_samples, np.random.default_rng([seed, 2]))
    test = random_split(len(table), cfg.test_share, (seed, 0))
    scaler = Standardizer.fit(table[~test])
    replica = Replica(seed, -1, scaler.transform(table[~test]), scaler.transform(table[test]))
    rng = np.random.default_rng([seed, 3])
    fresh = scaler.transform(scm.sample(cfg.num_generated, np.random.default_rng([seed, 4])))
    scores = {"true_scm": {"energy_distance": energy_distance(fresh, replica.test, seed=seed), "do_mean_error": 0.0}}
    cells = []  # (column k, value c standardised, descendants, true means [n] standardised)
    for k, node in enumerate(graph.nodes):
        descendants = sorted(graph.nodes.index(d) for d in nx.descendants(graph.graph, node))
        for value in np.quantile(table[~test][:, k], cfg.quantiles) if descendants else []:
            truth = do_scm(scm, {node: float(value)}).sample(cfg.num_generated, np.random.default_rng([seed, 5]))
            cells.append((k, float((value - scaler.mean[k]) / scaler.std[k]), descendants,
                          scaler.transform(truth).mean(axis=0)))
    for name in MODELS:
        model, prior = _fit(name, cfg, graph, replica)
        if name == "vae":
            generated = vae_sample(model, cfg.num_generated, torch.Generator().manual_seed(seed))
            means = [conditional_mean(generated, k, c) for k, c, _, _ in cells]
        else:
            generated = ancestral_sample(model, prior, graph.exogenous_mask(), replica.train, cfg.num_generated, rng)
            means = [ancestral_sample(model, prior, graph.exogenous_mask(), replica.train, cfg.num_generated, rng,
                                      {k: c}).mean(axis=0) for k, c, _, _ in cells]
        errors = [np.abs(mean[d] - truth[d]).mean() for mean, (_, _, d, truth) in zip(means, cells)]
        scores[name] = {"energy_distance": energy_distance(generated, replica.test, seed=seed),
                        "do_mean_error": float(np.mean(errors))}
    return scores


def run_generation_study(cfg: GenerateConfig, out_dir: Path) -> dict[str, Any]:
    """Train the four generators per seed, measure them; return summary.json's content (rows per model)."""
    graph = resolve_graph(cfg.graph)
    with job_run(cfg.experiment, f"generate-{graph.name}", config=cfg, seed=cfg.seeds[0],
                 dataset_hash=f"scm:{graph.name}:{cfg.seeds}") as run:
        drawing = draw_graph(graph, graph, Path(out_dir) / "graph.png", title=f"{graph.name} (true)")
        run.client.log_artifact(run.run_id, str(drawing), "graph")
        per_seed = []
        for step, seed in enumerate(cfg.seeds):
            per_seed.append(_seed_scores(cfg, graph, seed))
            print(f"[genlab] seed {seed}: " + ", ".join(f"{m} {s['energy_distance']:.3f}/{s['do_mean_error']:.3f}"
                                                      for m, s in per_seed[-1].items()), flush=True)
            run.log_metrics({f"{m}.{key}": value for m, s in per_seed[-1].items() for key, value in s.items()}, step)
        rows = []
        for name in ("true_scm", *MODELS):
            row: dict[str, Any] = {"model": name}
            for key in ("energy_distance", "do_mean_error"):
                row[key], row[f"{key}_se"] = mean_and_se(np.array([s[name][key] for s in per_seed]))
            rows.append(row)
        by = {row["model"]: row for row in rows}
        summary = {"graph": graph.name, "seeds": cfg.seeds, "models": rows,
                   "causal_gen_generates_closer_than_baselines": all(
                       by["causal_gen"]["energy_distance"] < by[b]["energy_distance"] for b in ("fully_connected", "vae")),
                   "causal_gen_do_closer_than_baselines": all(
                       by["causal_gen"]["do_mean_error"] < by[b]["do_mean_error"] for b in ("fully_connected", "vae")),
                   "mlflow_run_id": run.run_id}
        run.log_metrics({f"{row['model']}.{key}_mean": row[key] for row in rows for key in COLUMNS[1:]})
        print(console_table(rows, COLUMNS))
        write_reports(run, Path(out_dir), summary, {"generation.md": markdown_table(rows, COLUMNS)})
    return summary
