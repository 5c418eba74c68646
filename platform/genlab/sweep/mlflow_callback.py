"""The sweep's Tune callback: each trial mirrored into a run nested under the sweep's run.

`genlab.tracking.NestedRunCallback` does the run lifecycle (one run per trial name, resume,
retries, failures). What a sweep trial's run holds: its params (attack, purifier or defense and
its `kind`, seed, its params, and `purify_speed.*`: device, dtype, memory format, compiled, batch of the
purifier's networks), its sample grid (`samples/`), `METRICS` per classifier epoch
(with `cost_s` and a defense's detection scores), and, when a scheduler (ASHA) stopped it
before `full_epochs`, the tag `genlab.stopped_early=true` (else `false`). The
callback keeps every trial's last metrics (`final`, as logged) and the stopped ones
(`stopped_early`) for the report; on resume both come from the finished runs of the first attempt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.entities import Metric

from genlab.tracking import NestedRunCallback
from genlab.train.defenses import DEFENSE_NAMES

DETECTION_METRICS = ("detection_precision", "detection_recall", "rows_dropped")  # defenses that drop rows
METRICS = ("train_loss", "natural_accuracy", "poison_success_rate", "poison_success_rate_amplified",
           "purify_images_per_s", "cost_s", *DETECTION_METRICS)
STOPPED_TAG = "genlab.stopped_early"


class MlflowTrialCallback(NestedRunCallback):
    """One nested MLflow run per sweep trial, keyed by the trial spec's `name`."""

    def __init__(self, *, tracking_uri: str, experiment_id: str, parent_run_id: str, tags: dict[str, str],
                 params: dict[str, str], grids: dict[str, Path], full_epochs: int) -> None:
        super().__init__(tracking_uri=tracking_uri, experiment_id=experiment_id, parent_run_id=parent_run_id,
                         tags=tags, params=params)
        self.grids, self.full_epochs = grids, full_epochs
        self.final: dict[str, dict[str, Any]] = {}  # trial name -> last reported metrics (as logged)
        self.stopped_early: set[str] = set()  # finished trials a scheduler stopped before full_epochs
        self.epochs: dict[str, int] = {}  # trial name -> last epoch reported by its current attempt
        for name, run in self.finished_runs.items():
            self.final[name] = {k: v for k, v in run.data.metrics.items() if k in METRICS}
            if run.data.tags.get(STOPPED_TAG) == "true":
                self.stopped_early.add(name)

    def trial_name(self, trial: Any) -> str:
        return trial.config["spec"]["name"]

    def trial_params(self, trial: Any) -> dict[str, str]:
        spec = trial.config["spec"]
        return {"attack": spec["attack"], "purifier": spec["purifier"], "seed": str(spec["seed"]),
                "kind": "defense" if spec["purifier"] in DEFENSE_NAMES else "purifier",
                **{f"purifier_params.{k}": str(v) for k, v in spec["purifier_params"].items()},
                **{f"purify_speed.{k}": v for k, v in spec.get("purify_speed", {}).items()}}

    def on_run_start(self, run_id: str, trial: Any) -> None:
        self.epochs.pop(self.trial_name(trial), None)  # a retried attempt counts its epochs afresh
        self.client.log_artifact(run_id, str(self.grids[trial.config["spec"]["data_key"]]), "samples")

    def result_metrics(self, trial: Any, result: dict) -> list[Metric]:
        name = self.trial_name(trial)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        self.epochs[name] = step
        self.final[name] = {key: result[key] for key in METRICS if key in result}
        return [Metric(key, float(result[key]), 0, step) for key in METRICS if key in result]

    def on_run_finished(self, run_id: str, trial: Any) -> None:
        name = self.trial_name(trial)
        stopped = 0 < self.epochs.get(name, 0) < self.full_epochs
        self.client.set_tag(run_id, STOPPED_TAG, str(stopped).lower())
        if stopped:
            self.stopped_early.add(name)
