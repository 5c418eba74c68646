"""What the CCGM jobs do: data, training with MLflow tracking, evaluation, checkpoint, summary.json."""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.causal.ccgm.config import CCGMDebiasConfig, CCGMJobConfig
from genlab.causal.ccgm.debias import BiasTask, bias_report
from genlab.causal.ccgm.fit import fit_ccgm
from genlab.causal.ccgm.images import counterfactual_image_scores, save_intervention_grid, sweep_values
from genlab.causal.ccgm.metrics import (
    concept_information,
    counterfactual_fidelity,
    intervention_fidelity,
    intervention_grid,
    learned_graph_distance,
    reconstruction_error,
)
from genlab.causal.ccgm.model import CCGM, CHECKPOINT_KIND, CCGMConfig, graph_spec
from genlab.causal.gen.report import markdown_table
from genlab.causal.graph import CausalGraph, GraphError, resolve_graph
from genlab.causal.job import job_run, write_reports
from genlab.causal.pendulum import COLUMNS, grid_indices, make_pendulum
from genlab.causal.scm import StructuralCausalModel, build_scm
from genlab.checkpoints import save_model
from genlab.data.convert import UNIT, to_tensor
from genlab.errors import ConfigError
from genlab.tracking import TrackedRun, log_checkpoint_artifacts


@dataclass
class CCGMData:
    """Training and test inputs (normalised rows or unit images), raw labels [N, n], and what made them."""

    graph: CausalGraph
    scm: StructuralCausalModel | None
    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor
    data_hash: str


def load_data(cfg: CCGMJobConfig) -> CCGMData:
    """Return the job's data: rows drawn from the known SCM (train and an equal test draw) or pendulum images."""
    graph = resolve_graph(cfg.data.graph)
    if cfg.data.kind == "pendulum":
        if graph.nodes != COLUMNS:
            raise ConfigError(f"config key data.graph: pendulum data needs the nodes {list(COLUMNS)} in this order "
                              f"(use conf/graphs/pendulum.yaml)")
        scenes = len(grid_indices(cfg.data.pendulum.grid)[0])
        rows = np.sort(np.random.default_rng(cfg.seed).choice(scenes, size=min(cfg.data.num_samples, scenes),
                                                               replace=False))
        data = make_pendulum(cfg.data.pendulum, cfg.seed, rows=rows)
        images, labels = to_tensor(data.images, UNIT), torch.as_tensor(data.labels, dtype=torch.float32)
        test = torch.as_tensor(data.test)
        digest = hashlib.sha256(data.images.tobytes() + data.labels.tobytes()).hexdigest()
        return CCGMData(graph, None, images[~test], labels[~test], images[test], labels[test], digest)
    scm = build_scm(graph, cfg.data.scm, cfg.data.scm_seed)
    table = scm.sample(2 * cfg.data.num_samples, np.random.default_rng([cfg.seed, 1]))
    labels = torch.as_tensor(table, dtype=torch.float32)
    train, test = labels[:cfg.data.num_samples], labels[cfg.data.num_samples:]
    mean, std = train.mean(dim=0), train.std(dim=0)
    return CCGMData(graph, scm, (train - mean) / std, train, (test - mean) / std, test,
                    hashlib.sha256(table.tobytes()).hexdigest())


def train(cfg: CCGMJobConfig, data: CCGMData, run: TrackedRun, prefix: str = "") -> CCGM:
    """Return a CCGM trained on `data`, its `<prefix><phase>_loss` logged to the run per epoch."""
    torch.set_num_threads(cfg.torch_threads)
    print(f"[genlab] {cfg.model.causal_layer} layer, seed {cfg.seed}: {len(data.train_inputs)} train / "
          f"{len(data.test_inputs)} test {cfg.data.kind} rows, "
          f"graph {', '.join(f'{a}->{b}' for a, b in data.graph.edges)}")
    model = CCGM(CCGMConfig(graph=graph_spec(data.graph), data="image" if cfg.data.kind == "pendulum" else "tabular",
                            image_size=cfg.data.pendulum.image_size, settings=cfg.model, seed=cfg.seed))

    def on_epoch(phase: str, epoch: int, loss: float) -> None:
        run.log_metrics({f"{prefix}{phase}_loss": loss}, step=epoch)

    fit_ccgm(model, data.train_inputs, data.train_labels, cfg.train, seed=cfg.seed, on_epoch=on_epoch)
    return model


def evaluate(cfg: CCGMJobConfig, data: CCGMData, model: CCGM, run: TrackedRun, artifacts: Path) -> dict[str, Any]:
    """Return the model's measurements (flat floats plus intervention cells); log the floats and the grid PNG."""
    results: dict[str, Any] = {"reconstruction_error": reconstruction_error(model, data.test_inputs)}
    try:
        results.update(learned_graph_distance(model, data.graph))
    except GraphError:  # the CausalVAE baseline's thresholded adjacency can be cyclic
        results["shd"] = None
    if data.scm is not None:
        raw = data.train_labels.double().numpy()
        fidelity = intervention_fidelity(model, data.scm, intervention_grid(raw, data.graph.nodes, cfg.evaluation.quantiles),
                                         train_rows=len(raw), scale=raw.std(axis=0), num_samples=cfg.evaluation.num_samples,
                                         seed=cfg.seed)
        results.update(counterfactual_fidelity(model, data.scm, intervention_grid(raw, data.graph.nodes,
                                                                                  cfg.evaluation.quantiles),
                                               num_rows=1000, seed=cfg.seed))
        results.update({"intervention_mean_abs_error": fidelity["mean_abs_error"],
                        "intervention_tolerance": fidelity["tolerance"],
                        "non_descendants_identical": fidelity["non_descendants_identical"],
                        "intervention_per_descendant": fidelity["per_descendant"],
                        "intervention_cells": fidelity["cells"]})
    else:
        labels = data.test_labels.double().numpy()
        values = sweep_values(labels, cfg.evaluation.grid_columns)
        grid = save_intervention_grid(model, data.test_inputs[:1], values, artifacts / "intervention_grid.png")
        run.client.log_artifact(run.run_id, str(grid), "interventions")
        count = cfg.evaluation.counterfactual_images
        results.update(counterfactual_image_scores(model, data.test_inputs[:count], labels[:count], values,
                                                   cfg.data.pendulum.image_size))
        results.update(concept_information(model, data.test_inputs, labels))
    run.log_metrics({key: value for key, value in results.items() if isinstance(value, (int, float))})
    return results


def finish(model: CCGM, run: TrackedRun, out_dir: Path, summary: dict[str, Any],
           files: dict[str, str] | None = None) -> dict[str, Any]:
    """Save the model (safetensors checkpoint), write summary.json (with the run id) and the text `files`, log
    them; return the summary."""
    checkpoint = save_model(out_dir / "model", model, kind=CHECKPOINT_KIND, meta={"run_id": run.run_id})
    log_checkpoint_artifacts(run.client, run.run_id, checkpoint, "model")
    write_reports(run, out_dir, {"run_id": run.run_id, **summary}, files)
    return summary


def ccgm_run(cfg: CCGMJobConfig, data: CCGMData, run_label: str) -> AbstractContextManager[TrackedRun]:
    """Return the job's MLflow run (a context manager), named after the label, causal layer, graph and seed."""
    return job_run(cfg.experiment, f"{run_label}-{cfg.model.causal_layer}-{data.graph.name}-seed{cfg.seed}",
                   config=cfg, seed=cfg.seed, dataset_hash=data.data_hash)


def run_ccgm_train(cfg: CCGMJobConfig, out_dir: Path) -> dict[str, Any]:
    """Train a CCGM (or the CausalVAE baseline), evaluate it, save it; return the summary (also summary.json)."""
    data = load_data(cfg)
    with ccgm_run(cfg, data, "ccgm") as run:
        model = train(cfg, data, run)
        results = evaluate(cfg, data, model, run, Path(out_dir))
        results["learned_edges"] = [list(edge) for edge in model.causal.learned_edges()]
        return finish(model, run, Path(out_dir), results)


DEBIAS_COLUMNS = ["method", "abs_pearson", "mutual_information", "hsic", "hsic_p_value", "kept_pearson", "skewsize",
                  "accuracy"]
DEBIAS_METHODS = (("true data", "", "true"), ("CCGM, no de-biasing", "", "biased"), ("CCGM, edge cut", "", "debiased"),
                  ("CCGM, de-bias by do()", "", "do"), ("CausalVAE, no de-biasing", "causalvae", "biased"),
                  ("CausalVAE, de-bias by do()", "causalvae", "do"))


def debias_table(report: dict[str, float], baseline: dict[str, float] | None, task: BiasTask) -> list[dict[str, Any]]:
    """Return one row per (model, de-biasing method): the bias edge's dependence measures, the legitimate parents'
    kept |Pearson| with the child (first other parent; the truth's edge-cut world in the `true data` row),
    SkewSize and accuracy of the downstream classifier."""
    rows = []
    for method, model, name in DEBIAS_METHODS:
        source = baseline if model else report
        if source is None or f"abs_pearson_{name}" not in source:
            continue
        kept = [key for key in source if key.startswith("kept_") and key.endswith(f"_pearson_{'truth' if name == 'true' else name}")]
        rows.append({"method": method, **{m: source.get(f"{m}_{name}") for m in DEBIAS_COLUMNS[1:5]},
                     "kept_pearson": source[kept[0]] if kept else None,
                     "skewsize": source.get(f"skewsize_{name}"), "accuracy": source.get(f"accuracy_{name}")})
    return rows


def bias_task(cfg: CCGMDebiasConfig, graph: CausalGraph) -> BiasTask:
    """Return the validated bias task; ConfigError naming the key if it names unknown nodes or a missing edge."""
    bias = cfg.bias
    if tuple(bias.edge) not in graph.graph.edges:
        raise ConfigError(f"config key bias.edge: {bias.edge[0]} -> {bias.edge[1]} is not an edge of graph "
                          f"{graph.name} ({', '.join(f'{a}->{b}' for a, b in graph.edges)})")
    for key, names in (("bias.features", bias.features), ("bias.target", [bias.target]),
                       ("bias.attribute", [bias.attribute])):
        for name in names:
            if name not in graph.nodes:
                raise ConfigError(f"config key {key}: unknown node {name!r} (nodes: {', '.join(graph.nodes)})")
    return BiasTask(edge=tuple(bias.edge), features=tuple(bias.features), target=bias.target, attribute=bias.attribute)


def run_ccgm_debias(cfg: CCGMDebiasConfig, out_dir: Path) -> dict[str, Any]:
    """Train a CCGM on biased SCM data, check its interventions, cut the bias edge, measure bias before and after."""
    if cfg.data.kind != "scm":
        raise ConfigError("config key data.kind: the de-biasing story needs a known SCM (kind: scm)")
    if cfg.model.causal_layer != "ccgm":
        raise ConfigError("config key model.causal_layer: only the ccgm layer can cut an edge (CausalVAE has no edge cut)")
    task = bias_task(cfg, resolve_graph(cfg.data.graph))
    data = load_data(cfg)
    with ccgm_run(cfg, data, "ccgm-debias") as run:
        model = train(cfg, data, run)
        results = evaluate(cfg, data, model, run, Path(out_dir))
        raw = data.train_labels.double().numpy()
        report = bias_report(model, data.scm, raw, task, num_samples=cfg.evaluation.num_samples, seed=cfg.seed)
        run.log_metrics(report)
        baseline = None
        if cfg.causalvae_baseline:
            settings = cfg.model_copy(update={"model": cfg.model.model_copy(update={"causal_layer": "causalvae"}),
                                              "train": cfg.train.model_copy(update={"schedule": "joint"})})
            baseline = bias_report(train(settings, data, run, prefix="causalvae_"), data.scm, raw, task,
                                   num_samples=cfg.evaluation.num_samples, seed=cfg.seed)
            run.log_metrics({f"causalvae_{key}": value for key, value in baseline.items()})
        summary = {"intervention_mean_abs_error": results["intervention_mean_abs_error"],
                   "intervention_tolerance": results["intervention_tolerance"],
                   "skewsize_biased": report["skewsize_biased"], "skewsize_debiased": report["skewsize_debiased"],
                   "bias_edge": list(task.edge), "bias": report, "causalvae_bias": baseline,
                   "debias_table": debias_table(report, baseline, task),
                   **{key: value for key, value in results.items() if key not in ("intervention_mean_abs_error",
                                                                                  "intervention_tolerance")}}
        return finish(model, run, Path(out_dir), summary, {"debias.md": markdown_table(summary["debias_table"],
                                                                                       DEBIAS_COLUMNS)})
