"""A Tune callback on the driver that mirrors every trial into a nested MLflow run.

The driver is the only MLflow writer (one sqlite writer, and on a cluster the only process
that needs the tracking server): a child run per trial under the sweep's parent run, the
trial's params, its per-epoch metrics, its sample grid, and its end state (FINISHED, or
FAILED with the error text as the `error` tag and `error.txt`). Runs are keyed by trial
name (`genlab.trial_name` tag), so a resumed sweep finds the runs of its first attempt:
finished ones are kept as they are, unfinished ones are replaced, and no trial ends with two.
A failed attempt that Tune retries (`tune.max_failures`) is replaced the same way: its run is
deleted and the next attempt logs a fresh one, holding the earlier errors as
`attempts/error-<n>.txt` and the tag `genlab.retries`. A trial a scheduler (ASHA) stopped before
`full_epochs` ends FINISHED with the tag `genlab.stopped_early=true`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from ray import tune

from genlab.tracking import log_params, start_child_run

METRICS = ("train_loss", "natural_accuracy", "poison_success_rate", "purify_images_per_s")
TRIAL_TAG = "genlab.trial_name"
STOPPED_TAG = "genlab.stopped_early"


class MlflowTrialCallback(tune.Callback):
    """Creates, fills and closes one nested MLflow run per Tune trial."""

    def __init__(self, *, tracking_uri: str, experiment_id: str, parent_run_id: str, tags: dict[str, str],
                 params: dict[str, str], grids: dict[str, Path], full_epochs: int) -> None:
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.tags, self.params, self.grids, self.full_epochs = tags, params, grids, full_epochs
        self.run_ids: dict[str, str] = {}  # trial name -> MLflow run id of this attempt
        self.final: dict[str, dict[str, Any]] = {}  # trial name -> last reported metrics (as logged)
        self.finished: set[str] = set()  # names of trials that completed (in this or an earlier attempt)
        self.stale: dict[str, str] = {}  # trial name -> unfinished run of an earlier attempt
        self.stopped_early: set[str] = set()  # finished trials a scheduler stopped before full_epochs
        self.errors: dict[str, list[str]] = {}  # trial name -> error texts of its failed, retried attempts
        self.epochs: dict[str, int] = {}  # trial name -> last epoch reported by this attempt
        for run in self.client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'"):
            name = run.data.tags.get(TRIAL_TAG)
            if run.info.status == "FINISHED" and name:
                self.finished.add(name)
                self.final[name] = {k: v for k, v in run.data.metrics.items() if k in METRICS}
                if run.data.tags.get(STOPPED_TAG) == "true":
                    self.stopped_early.add(name)
            elif name:
                self.stale[name] = run.info.run_id

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = trial.config["spec"]
        name = spec["name"]
        if name in self.finished or name in self.run_ids:
            return
        if name in self.stale:
            self.client.delete_run(self.stale.pop(name))
        run_id = start_child_run(self.client, experiment=self.experiment_id, parent_run_id=self.parent_run_id,
                                 run_name=name, tags={**self.tags, TRIAL_TAG: name})
        self.run_ids[name] = run_id
        for attempt, text in enumerate(self.errors.get(name, []), start=1):
            self.client.log_text(run_id, text, f"attempts/error-{attempt}.txt")
        if name in self.errors:
            self.client.set_tag(run_id, "genlab.retries", str(len(self.errors[name])))
        trial_params = {"attack": spec["attack"], "purifier": spec["purifier"], "seed": str(spec["seed"]),
                        **{f"purifier_params.{k}": str(v) for k, v in spec["purifier_params"].items()}}
        log_params(self.client, run_id, {**self.params, **trial_params})
        self.client.log_artifact(run_id, str(self.grids[spec["data_key"]]), "samples")

    def _active_run(self, trial: Any) -> str | None:
        name = trial.config["spec"]["name"]
        return None if name in self.finished else self.run_ids.get(name)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self._active_run(trial)
        if run_id is None:
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        metrics = [Metric(key, float(result[key]), 0, step) for key in METRICS if key in result]
        self.client.log_batch(run_id, metrics=metrics)
        self.epochs[trial.config["spec"]["name"]] = step
        self.final[trial.config["spec"]["name"]] = {key: result[key] for key in METRICS if key in result}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._active_run(trial)
        if run_id is None:
            return
        name = trial.config["spec"]["name"]
        stopped = 0 < self.epochs.get(name, 0) < self.full_epochs
        self.client.set_tag(run_id, STOPPED_TAG, str(stopped).lower())
        self.client.set_terminated(run_id, "FINISHED")
        self.finished.add(name)
        if stopped:
            self.stopped_early.add(name)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed attempt Tune will retry: keep its error for the next attempt's run, delete its own run."""
        run_id = self._active_run(trial)
        if run_id is None:
            return
        name = trial.config["spec"]["name"]
        self.errors.setdefault(name, []).append(_error_text(trial))
        self.client.delete_run(self.run_ids.pop(name))
        self.epochs.pop(name, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._active_run(trial)
        if run_id is None:
            return
        text = _error_text(trial)
        self.client.set_tag(run_id, "error", text.strip().splitlines()[-1][:5000])
        self.client.log_text(run_id, text, "error.txt")
        self.client.set_terminated(run_id, "FAILED")


def _error_text(trial: Any) -> str:
    """Return the traceback Tune recorded for the trial's last failure (or its error's text)."""
    error_file = Path(trial.error_file) if trial.error_file else None
    return error_file.read_text() if error_file and error_file.exists() else str(trial.get_error() or "unknown error")
