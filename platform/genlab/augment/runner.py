"""Run a LAVAE experiment, or a sweep of them, and record it: MLflow runs, `summary.json`, console table.

Without a sweep grid: one MLflow run in experiment `cfg.experiment` holding the params,
per-epoch losses, every final number and the artifacts (grids, transfer heatmap, models).
With a grid: a parent run and one nested run per Ray Tune trial; `summary.json` then
holds every trial and, at the top, the numbers of the best trial by `sweep.metric`.
An output directory that already holds a `summary.json` is refused: results are never overwritten.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from genlab.augment.config import LatentAugmentConfig
from genlab.augment.data import load_images
from genlab.augment.experiment import SUMMARY_KEYS, ExperimentResult, pair_tag, run_experiment
from genlab.augment.report import numeric_metrics
from genlab.augment.sweep import base_config, plan_trials, run_trials, trial_config
from genlab.data import ImageSet
from genlab.errors import GenlabError
from genlab.fileio import atomic_directory, write_json_atomic
from genlab.runtime import init_ray
from genlab.tracking import (experiment_id, log_params, params_for, standard_tags, start_child_run, tracking_uri,
                             ui_command)

MLFLOW_BATCH = 1000


class ResultsExistError(GenlabError):
    """The output directory already holds a summary.json; results are never overwritten."""


def run_latent_augment(cfg: LatentAugmentConfig, out_dir: Path) -> dict[str, Any]:
    """Run `cfg` (once, or its sweep grid on Ray Tune); write `out_dir/summary.json`; return the summary."""
    out_dir = Path(out_dir).resolve()
    if (out_dir / "summary.json").exists():
        raise ResultsExistError(f"{out_dir} already holds the results of a run; pass another --out")
    trials = plan_trials(cfg) if cfg.sweep.grid else []
    train, test = load_images(cfg.data)
    print(f"[genlab] {cfg.data.name}: {len(train)} train / {len(test)} test images {train.shape}, "
          f"hash {train.hash[:12]}")
    uri = tracking_uri()
    client = MlflowClient(uri)
    exp_id = experiment_id(cfg.experiment)
    tags = standard_tags(dataset_hash=train.hash, seed=cfg.seed)
    name = f"lavae-{cfg.data.name}-{pair_tag(cfg.pairs[0])}-seed{cfg.seed}"
    run_id = client.create_run(exp_id, run_name=f"sweep-{name}" if trials else name, tags=tags).info.run_id
    log_params(client, run_id, params_for(cfg))
    try:
        if trials:
            summary = _sweep(cfg, trials, train, test, client, exp_id, run_id, tags, out_dir)
        else:
            torch.set_num_threads(cfg.threads)
            with atomic_directory(out_dir / "artifacts") as artifacts:
                result = run_experiment(cfg, train, test, artifacts)
                _log_result(client, run_id, result, artifacts)
            summary = result.summary
        write_json_atomic(out_dir / "summary.json", summary)
        client.log_artifact(run_id, str(out_dir / "summary.json"))
        client.set_terminated(run_id, "FINISHED" if _all_finished(summary) else "FAILED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    print("\n".join(f"  {key:24s} {summary.get(key)}" for key in SUMMARY_KEYS))
    print(f"[genlab] summary: {out_dir / 'summary.json'}")
    print(f"[genlab] look at the runs: {ui_command(uri)}")
    return summary


def _all_finished(summary: dict[str, Any]) -> bool:
    """Return False when a sweep trial failed."""
    return all(trial["status"] == "FINISHED" for trial in summary.get("trials", []))


def _log_result(client: MlflowClient, run_id: str, result: ExperimentResult, artifacts: Path) -> None:
    """Log per-epoch losses, every final number of the summary and the artifact folder to one MLflow run."""
    now = int(time.time() * 1000)
    final = numeric_metrics({key: value for key, value in result.summary.items() if key != "dataset"})
    metrics = [Metric(key, value, now, step) for key, value, step in [*map(tuple, result.history), *final]]
    for start in range(0, len(metrics), MLFLOW_BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + MLFLOW_BATCH])
    client.log_artifacts(run_id, str(artifacts))


def _sweep(cfg: LatentAugmentConfig, trials: list[dict[str, Any]], train: ImageSet, test: ImageSet,
           client: MlflowClient, exp_id: str, parent_id: str, tags: dict[str, str], out_dir: Path) -> dict[str, Any]:
    """Run the trials on Ray Tune, mirror each into a nested MLflow run; return the sweep summary."""
    init_ray(cfg.ray)
    grid = run_trials(cfg, trials, train, test, cfg.sweep.storage_path or str(out_dir / "tune"))
    base, rows = base_config(cfg), []
    for result in grid:
        trial = result.config["trial"]
        child = start_child_run(client, experiment=exp_id, parent_run_id=parent_id, run_name=trial["name"],
                                tags={**tags, "genlab.trial_overrides": " ".join(trial["overrides"])})
        log_params(client, child, params_for(trial_config(base, trial["overrides"])))
        row: dict[str, Any] = {"name": trial["name"], "overrides": trial["overrides"], "run_id": child}
        if result.error is not None or result.checkpoint is None:
            error = str(result.error or "no checkpoint").strip().splitlines()[-1][:5000]
            client.set_tag(child, "error", error)
            client.set_terminated(child, "FAILED")
            rows.append({**row, "status": "FAILED", "error": error})
            continue
        with result.checkpoint.as_directory() as directory:
            payload = json.loads((Path(directory) / "result.json").read_text())
            _log_result(client, child, ExperimentResult(payload["summary"], payload["history"]),
                        Path(directory) / "artifacts")
        client.set_terminated(child, "FINISHED")
        rows.append({**row, "status": "FINISHED", **{key: payload["summary"][key] for key in SUMMARY_KEYS}})
    finished = [row for row in rows if row["status"] == "FINISHED" and row[cfg.sweep.metric] is not None]
    best = min(finished, key=lambda row: row[cfg.sweep.metric]) if finished else {}
    return {**{key: best.get(key) for key in SUMMARY_KEYS}, "best_trial": best.get("name"),
            "sweep_metric": cfg.sweep.metric, "trials": rows}
