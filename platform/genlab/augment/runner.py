"""Run a LAVAE experiment, or a sweep of them, and record it: MLflow runs, `summary.json`, console table.

Without a sweep grid: one MLflow run in experiment `cfg.experiment` holding the params,
per-epoch losses, every final number and the artifacts (grids, transfer heatmap, models).
With a grid: a parent run and one nested run per Ray Tune trial; `summary.json` then
holds every trial and, at the top, the numbers of the best trial by `sweep.metric`.
An output directory that already holds a `summary.json` is refused: results are never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from mlflow.tracking import MlflowClient

from genlab.augment.config import LatentAugmentConfig
from genlab.augment.data import load_images
from genlab.augment.experiment import SUMMARY_KEYS, ExperimentResult, pair_tag, run_experiment
from genlab.augment.sweep import base_config, plan_trials, run_trials, trial_config
from genlab.data import ImageSet
from genlab.errors import GenlabError
from genlab.fileio import atomic_directory, write_json_atomic
from genlab.runtime import init_ray
from genlab.tracking import (
    TRIAL_TAG,
    NestedRunCallback,
    TrackedRun,
    log_metric_batch,
    numeric_metrics,
    params_for,
    standard_tags,
    tracked_run,
    tracking_uri,
    ui_command,
)


class ResultsExistError(GenlabError):
    """The output directory already holds a summary.json; results are never overwritten."""


class LatentAugmentTrialRuns(NestedRunCallback):
    """One nested MLflow run per sweep trial: its config as params, its overrides as the tag
    `genlab.trial_overrides`, and, once it finished, its per-epoch losses, final numbers and
    artifacts read from the trial's checkpoint."""

    def __init__(self, *, base: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base = base  # the config every trial starts from (`sweep.base_config`)

    def trial_name(self, trial: Any) -> str:
        """Return the planned trial's name (`lavae-<key><value>...`)."""
        return trial.config["trial"]["name"]

    def trial_params(self, trial: Any) -> dict[str, str]:
        """Return the trial's own config (base plus its overrides) flattened to params."""
        return params_for(trial_config(self.base, trial.config["trial"]["overrides"]))

    def trial_tags(self, trial: Any) -> dict[str, str]:
        """Return the tag holding the trial's `key=value` overrides."""
        return {"genlab.trial_overrides": " ".join(trial.config["trial"]["overrides"])}

    def on_run_finished(self, run_id: str, trial: Any) -> None:
        """Log the result the trial checkpointed (`result.json` and `artifacts/`) to its run."""
        with trial.checkpoint.as_directory() as directory:
            payload = json.loads((Path(directory) / "result.json").read_text())
            log_result(self.client, run_id, ExperimentResult(payload["summary"], payload["history"]),
                       Path(directory) / "artifacts")


def run_latent_augment(cfg: LatentAugmentConfig, out_dir: Path) -> dict[str, Any]:
    """Run `cfg` (once, or its sweep grid on Ray Tune); write `out_dir/summary.json`; return the summary."""
    out_dir = Path(out_dir).resolve()
    if (out_dir / "summary.json").exists():
        raise ResultsExistError(f"{out_dir} already holds the results of a run; pass another --out")
    trials = plan_trials(cfg) if cfg.sweep.grid else []
    train, test = load_images(cfg.data)
    print(f"[genlab] {cfg.data.name}: {len(train)} train / {len(test)} test images {train.shape}, "
          f"hash {train.hash[:12]}")
    name = f"lavae-{cfg.data.name}-{pair_tag(cfg.pairs[0])}-seed{cfg.seed}"
    with tracked_run(cfg.experiment, run_name=f"sweep-{name}" if trials else name, config=cfg, seed=cfg.seed,
                     dataset_hash=train.hash) as run:
        if trials:
            summary = _sweep(cfg, trials, train, test, run, out_dir)
            run.finish_as(all(trial["status"] == "FINISHED" for trial in summary["trials"]))
        else:
            torch.set_num_threads(cfg.threads)
            with atomic_directory(out_dir / "artifacts") as artifacts:
                result = run_experiment(cfg, train, test, artifacts)
                log_result(run.client, run.run_id, result, artifacts)
            summary = result.summary
        write_json_atomic(out_dir / "summary.json", summary)
        run.client.log_artifact(run.run_id, str(out_dir / "summary.json"))
    print("\n".join(f"  {key:24s} {summary.get(key)}" for key in SUMMARY_KEYS))
    print(f"[genlab] summary: {out_dir / 'summary.json'}")
    print(f"[genlab] look at the runs: {ui_command()}")
    return summary


def log_result(client: MlflowClient, run_id: str, result: ExperimentResult, artifacts: Path) -> None:
    """Log per-epoch losses, every final number of the summary and the artifact folder to one MLflow run."""
    final = numeric_metrics({key: value for key, value in result.summary.items() if key != "dataset"})
    log_metric_batch(client, run_id, [*map(tuple, result.history), *final])
    client.log_artifacts(run_id, str(artifacts))


def _sweep(cfg: LatentAugmentConfig, trials: list[dict[str, Any]], train: ImageSet, test: ImageSet,
           run: TrackedRun, out_dir: Path) -> dict[str, Any]:
    """Run the trials on Ray Tune, each mirrored into a run nested under `run`; return the sweep summary."""
    init_ray(cfg.ray)
    trial_runs = LatentAugmentTrialRuns(base=base_config(cfg), tracking_uri=tracking_uri(),
                                        experiment_id=run.experiment_id, parent_run_id=run.run_id,
                                        tags=standard_tags(dataset_hash=train.hash, seed=cfg.seed), params={})
    grid = run_trials(cfg, trials, train, test, cfg.sweep.storage_path or str(out_dir / "tune"), [trial_runs])
    run_ids = {child.data.tags[TRIAL_TAG]: child.info.run_id for child in run.client.search_runs(
        [run.experiment_id], f"tags.`mlflow.parentRunId` = '{run.run_id}'")}
    rows = []
    for result in grid:
        trial = result.config["trial"]
        row: dict[str, Any] = {"name": trial["name"], "overrides": trial["overrides"], "run_id": run_ids[trial["name"]]}
        if result.error is not None:
            rows.append({**row, "status": "FAILED", "error": str(result.error).strip().splitlines()[-1][:5000]})
        else:
            rows.append({**row, "status": "FINISHED", **{key: result.metrics.get(key) for key in SUMMARY_KEYS}})
    finished = [row for row in rows if row["status"] == "FINISHED" and row[cfg.sweep.metric] is not None]
    best = min(finished, key=lambda row: row[cfg.sweep.metric]) if finished else {}
    return {**{key: best.get(key) for key in SUMMARY_KEYS}, "best_trial": best.get("name"),
            "sweep_metric": cfg.sweep.metric, "trials": rows}
