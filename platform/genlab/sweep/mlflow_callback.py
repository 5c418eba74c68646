"""A Tune callback on the driver that mirrors every trial into a nested MLflow run.

The driver is the only MLflow writer (one sqlite writer, and on a cluster the only process
that needs the tracking server): a child run per trial under the sweep's parent run, the
trial's params, its per-epoch metrics, its sample grid, and its end state (FINISHED, or
FAILED with the error text as the `error` tag and `error.txt`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from ray import tune

from genlab.tracking import log_params, start_child_run

METRICS = ("train_loss", "natural_accuracy", "poison_success_rate", "purify_images_per_s")


class MlflowTrialCallback(tune.Callback):
    """Creates, fills and closes one nested MLflow run per Tune trial."""

    def __init__(self, *, tracking_uri: str, experiment_id: str, parent_run_id: str, tags: dict[str, str],
                 params: dict[str, str], grids: dict[str, Path]) -> None:
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.tags, self.params, self.grids = tags, params, grids
        self.run_ids: dict[str, str] = {}  # trial id -> MLflow run id
        self.final: dict[str, dict[str, Any]] = {}  # trial name -> last reported metrics (as logged)
        self.finished: set[str] = set()  # names of trials that completed

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.run_ids:
            return
        spec = trial.config["spec"]
        run_id = start_child_run(self.client, experiment=self.experiment_id, parent_run_id=self.parent_run_id,
                                 run_name=spec["name"], tags={**self.tags, "genlab.trial_id": trial.trial_id})
        self.run_ids[trial.trial_id] = run_id
        trial_params = {"attack": spec["attack"], "purifier": spec["purifier"], "seed": str(spec["seed"]),
                        **{f"purifier_params.{k}": str(v) for k, v in spec["purifier_params"].items()}}
        log_params(self.client, run_id, {**self.params, **trial_params})
        self.client.log_artifact(run_id, str(self.grids[spec["data_key"]]), "samples")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.run_ids[trial.trial_id]
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        metrics = [Metric(key, float(result[key]), 0, step) for key in METRICS if key in result]
        self.client.log_batch(run_id, metrics=metrics)
        self.final[trial.config["spec"]["name"]] = {key: result[key] for key in METRICS if key in result}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.client.set_terminated(self.run_ids[trial.trial_id], "FINISHED")
        self.finished.add(trial.config["spec"]["name"])

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None:
            return
        error_file = Path(trial.error_file) if trial.error_file else None
        text = error_file.read_text() if error_file and error_file.exists() else str(trial.get_error() or "unknown error")
        self.client.set_tag(run_id, "error", text.strip().splitlines()[-1][:5000])
        self.client.log_text(run_id, text, "error.txt")
        self.client.set_terminated(run_id, "FAILED")
