"""What both causal jobs do around their trials: data, replicas, the MLflow parent run, Ray Tune."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from genlab.causal.config import CausalJobConfig
from genlab.causal.graph import CausalGraph
from genlab.causal.splits import split_columns
from genlab.causal.tables import make_tables, tables_hash
from genlab.causal.train import Replica, make_replicas
from genlab.causal.trials import CausalTrialCallback, run_tune
from genlab.fileio import write_json_atomic, write_text_atomic
from genlab.runtime import init_ray
from genlab.tracking import experiment_id, log_params, params_for, standard_tags, tracking_uri


@dataclass
class CausalJob:
    """A causal job in progress: its true graph, replicas and MLflow parent run."""

    graph: CausalGraph
    replicas: list[Replica]
    client: MlflowClient
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    out_dir: Path

    @property
    def seeds(self) -> list[int]:
        """Return the seeds, in replica order, without repeats."""
        return list(dict.fromkeys(r.seed for r in self.replicas))

    @property
    def split_names(self) -> list[str]:
        """Return the variable each OOD split holds a tail of, in replica order within a seed."""
        return [self.graph.nodes[r.column] for r in self.replicas[:len(self.replicas) // len(self.seeds)]]

    def per_seed(self, values: np.ndarray) -> np.ndarray:
        """Return per-replica values [R] reshaped to [seeds, splits] (replicas are seed-major)."""
        return np.asarray(values).reshape(len(self.seeds), -1)

    def run_trials(self, cfg: CausalJobConfig, specs: list[dict[str, Any]]) -> CausalTrialCallback:
        """Run one Tune trial per spec on Ray; return the callback holding the outcomes."""
        init_ray(cfg.ray)
        callback = CausalTrialCallback(specs={spec["name"]: spec for spec in specs}, tracking_uri=tracking_uri(),
                                       experiment_id=self.experiment_id, parent_run_id=self.parent_run_id,
                                       tags=self.tags, params=self.params, replica_seeds=[r.seed for r in self.replicas])
        storage = cfg.tune.storage_path or str(Path(cfg.work_dir).resolve() / "ray_results")
        run_tune(self.replicas, self.graph.exogenous_mask(), train=cfg.train, tune_settings=cfg.tune, storage=storage,
                 name=cfg.experiment, callback=callback)
        return callback

    def write_reports(self, files: dict[str, str], summary: dict[str, Any]) -> None:
        """Write `summary.json` and the text `files` (name -> content) to out_dir; log all to the parent run."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = [write_json_atomic(self.out_dir / "summary.json", summary)]
        paths += [write_text_atomic(self.out_dir / name, text) for name, text in files.items()]
        for path in paths:
            self.client.log_artifact(self.parent_run_id, str(path), "report")


def start_job(cfg: CausalJobConfig, graph: CausalGraph, out_dir: Path, run_label: str) -> CausalJob:
    """Draw the tables and replicas over the true `graph`, and open the MLflow parent run."""
    columns = split_columns(graph.nodes, graph.exogenous, cfg.split)
    tables = make_tables(cfg.data, graph, cfg.seeds)
    replicas = make_replicas(tables, columns, cfg.split.quantile)
    data_hash = tables_hash(tables)
    print(f"[genlab] graph {graph.name}: {len(graph.nodes)} nodes, {graph.num_edges} edges, exogenous "
          f"{', '.join(graph.exogenous)}; {cfg.data.kind} data, {cfg.data.num_samples} rows x {len(cfg.seeds)} seeds, "
          f"OOD splits on {', '.join(graph.nodes[c] for c in columns)}; hash {data_hash[:12]}")
    client = MlflowClient(tracking_uri())
    exp_id = experiment_id(cfg.experiment)
    tags = standard_tags(dataset_hash=data_hash, seed=cfg.seeds[0])
    run_name = f"{run_label}-{graph.name}-{cfg.data.kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    parent = client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
    params = params_for(cfg)
    log_params(client, parent, params)
    return CausalJob(graph=graph, replicas=replicas, client=client, experiment_id=exp_id, parent_run_id=parent,
                     tags=tags, params=params, out_dir=Path(out_dir).resolve())


def metrics_of(row: dict[str, Any], names: dict[str, str]) -> list[Metric]:
    """Return MLflow metrics (step 0) named as `names`' keys from `row[names[key]]`; None values are skipped."""
    now = int(time.time() * 1000)
    return [Metric(metric, float(row[key]), now, 0) for metric, key in names.items() if row.get(key) is not None]
