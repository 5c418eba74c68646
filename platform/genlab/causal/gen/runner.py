"""What both Causal Gen jobs do around their trials: data, replicas, the MLflow parent run, Ray Tune, reports."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from genlab.causal.gen.config import CausalJobConfig
from genlab.causal.gen.tables import make_tables, tables_hash
from genlab.causal.gen.train import Replica, make_replicas
from genlab.causal.gen.trials import CausalTrialCallback, run_tune
from genlab.causal.graph import CausalGraph
from genlab.causal.job import job_run
from genlab.causal.splits import split_columns
from genlab.runtime import init_ray
from genlab.tracking import TrackedRun, log_metrics, params_for, standard_tags, tracking_uri


@dataclass
class CausalJob:
    """A Causal Gen job in progress: its config, true graph, replicas and MLflow parent run."""

    config: CausalJobConfig
    graph: CausalGraph
    replicas: list[Replica]
    run: TrackedRun
    tags: dict[str, str]  # the parent run's standard tags, given to every trial's run too
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

    def run_trials(self, specs: list[dict[str, Any]]) -> CausalTrialCallback:
        """Run one Tune trial per spec on Ray; return the callback holding the outcomes."""
        cfg = self.config
        init_ray(cfg.ray)
        callback = CausalTrialCallback(specs={spec["name"]: spec for spec in specs},
                                       replica_seeds=[r.seed for r in self.replicas], tracking_uri=tracking_uri(),
                                       experiment_id=self.run.experiment_id, parent_run_id=self.run.run_id,
                                       tags=self.tags, params=params_for(cfg))
        storage = cfg.tune.storage_path or str(Path(cfg.work_dir).resolve() / "ray_results")
        run_tune(self.replicas, self.graph.exogenous_mask(), train=cfg.train, tune_settings=cfg.tune, storage=storage,
                 name=cfg.experiment, callback=callback)
        return callback

    def log_row(self, run_id: str, row: dict[str, Any], names: dict[str, str]) -> None:
        """Log to run `run_id`, at step 0, each metric of `names` (MLflow name -> row key) whose value is not None."""
        log_metrics(self.run.client, run_id, {metric: row[key] for metric, key in names.items()
                                              if row.get(key) is not None}, step=0)


@contextmanager
def causal_job(cfg: CausalJobConfig, graph: CausalGraph, out_dir: Path, run_label: str) -> Iterator[CausalJob]:
    """Draw the tables and replicas over the true `graph`, open the MLflow parent run; yield the job in it."""
    columns = split_columns(graph.nodes, graph.exogenous, cfg.split)
    tables = make_tables(cfg.data, graph, cfg.seeds)
    replicas = make_replicas(tables, columns, cfg.split.quantile, cfg.split.kind)
    data_hash = tables_hash(tables)
    print(f"[genlab] graph {graph.name}: {len(graph.nodes)} nodes, {graph.num_edges} edges, exogenous "
          f"{', '.join(graph.exogenous)}; {cfg.data.kind} data, {cfg.data.num_samples} rows x {len(cfg.seeds)} seeds, "
          f"{cfg.split.kind} splits on {', '.join(graph.nodes[c] for c in columns)}; hash {data_hash[:12]}")
    with job_run(cfg.experiment, f"{run_label}-{graph.name}-{cfg.data.kind}", config=cfg, seed=cfg.seeds[0],
                 dataset_hash=data_hash) as run:
        yield CausalJob(config=cfg, graph=graph, replicas=replicas, run=run,
                        tags=standard_tags(dataset_hash=data_hash, seed=cfg.seeds[0]), out_dir=Path(out_dir).resolve())
