"""Ray Tune side of the causal jobs: the trainable, the MLflow callback and the Tune run.

One trial = one model over one structural prior, trained on every replica ((seed, split)
table) at once. The trial reports `train_loss` every few epochs and, at the end, its OOD and
train errors per replica. The driver-side callback is the only MLflow writer: a nested run
per trial (tag `mlflow.parentRunId`) with its params, drawing, `train_loss` per epoch and
`ood_mse` per seed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from pydantic import TypeAdapter
from ray import tune

from genlab.causal.config import TrialSettings
from genlab.causal.models import ModelSettings
from genlab.causal.train import Replica, TrainSettings, ood_errors
from genlab.config import StrictModel
from genlab.tracking import log_params, start_child_run

REPORT_EVERY = 10  # epochs between train_loss reports
MODEL_SETTINGS = TypeAdapter(ModelSettings)


def trial_spec(name: str, model: StrictModel, prior: np.ndarray, params: dict[str, str], drawing: Path | None) -> dict[str, Any]:
    """Return a trial's spec (plain data, shipped to the trial): name, model settings, prior [n, n], MLflow params."""
    return {"name": name, "model": model.model_dump(), "prior": prior.tolist(), "params": params,
            "drawing": str(drawing) if drawing else None}


def causal_trial(config: dict[str, Any], *, specs: dict[str, dict[str, Any]], replicas: list[Replica],
                 exogenous: np.ndarray, train: dict[str, Any], num_threads: int) -> None:
    """Train the model of spec `specs[config["name"]]` on every replica and `tune.report` its errors.

    Reports `epoch` and `train_loss` every REPORT_EVERY epochs and after the last, then `ood_mse` and `train_mse`
    (means over replicas) with `ood_mse_per_replica` and `train_mse_per_replica` (lists, in
    replica order), all in standardised units^2.
    """
    spec = specs[config["name"]]
    torch.set_num_threads(max(1, num_threads))
    settings = TrainSettings.model_validate(train)

    def on_epoch(epoch: int, losses: np.ndarray) -> None:
        """Report the mean train loss over replicas (standardised units^2) every REPORT_EVERY epochs."""
        if (epoch + 1) % REPORT_EVERY == 0 or epoch + 1 == settings.epochs:
            tune.report({"epoch": epoch + 1, "train_loss": float(losses.mean())})

    errors = ood_errors(MODEL_SETTINGS.validate_python(spec["model"]), settings, np.asarray(spec["prior"]),
                        exogenous, replicas, on_epoch)
    tune.report({"epoch": settings.epochs, "ood_mse": float(errors["ood_mse"].mean()),
                 "train_mse": float(errors["train_mse"].mean()),
                 "ood_mse_per_replica": errors["ood_mse"].tolist(),
                 "train_mse_per_replica": errors["train_mse"].tolist()})


class CausalTrialCallback(tune.Callback):
    """Creates, fills and closes one nested MLflow run per trial; keeps each trial's errors."""

    def __init__(self, *, specs: dict[str, dict[str, Any]], tracking_uri: str, experiment_id: str, parent_run_id: str,
                 tags: dict[str, str], params: dict[str, str], replica_seeds: list[int]) -> None:
        self.specs = specs
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.tags, self.params, self.replica_seeds = tags, params, np.asarray(replica_seeds)
        self.run_ids: dict[str, str] = {}  # trial name -> MLflow run id
        self.errors: dict[str, dict[str, np.ndarray]] = {}  # trial name -> ood_mse / train_mse per replica [R]
        self.finished: set[str] = set()  # names of trials that completed

    @property
    def client(self) -> MlflowClient:
        """Return a client of the tracking store (made per use: the callback may be copied by Tune)."""
        return MlflowClient(self.tracking_uri)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Open the trial's nested run (once, even on restart): params, drawing of its graph."""
        spec = self.specs[trial.config["name"]]
        if spec["name"] in self.run_ids:
            return
        run_id = start_child_run(self.client, experiment=self.experiment_id, parent_run_id=self.parent_run_id,
                                 run_name=spec["name"], tags={**self.tags, "genlab.trial_id": trial.trial_id})
        self.run_ids[spec["name"]] = run_id
        log_params(self.client, run_id, {**self.params, **spec["params"]})
        if spec["drawing"]:
            self.client.log_artifact(run_id, spec["drawing"], "graph")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Log `train_loss` by epoch; on the final result keep the errors and log `ood_mse` / `train_mse` per seed."""
        name = trial.config["name"]
        run_id, now = self.run_ids[name], int(time.time() * 1000)
        metrics = []
        if "train_loss" in result:
            metrics.append(Metric("train_loss", float(result["train_loss"]), now, int(result["epoch"])))
        if "ood_mse_per_replica" in result:
            errors = {key: np.asarray(result[f"{key}_per_replica"]) for key in ("ood_mse", "train_mse")}
            self.errors[name] = errors
            for step, seed in enumerate(dict.fromkeys(self.replica_seeds.tolist())):
                for key, values in errors.items():
                    metrics.append(Metric(key, float(values[self.replica_seeds == seed].mean()), now, step))
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Close the trial's run as FINISHED."""
        name = trial.config["name"]
        self.client.set_terminated(self.run_ids[name], "FINISHED")
        self.finished.add(name)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Close the trial's run as FAILED with the error's last line as tag `error` and the text as error.txt."""
        run_id = self.run_ids.get(trial.config["name"])
        if run_id is None:
            return
        text = str(trial.get_error() or "unknown error")
        self.client.set_tag(run_id, "error", text.strip().splitlines()[-1][:5000])
        self.client.log_text(run_id, text, "error.txt")
        self.client.set_terminated(run_id, "FAILED")


def run_tune(replicas: list[Replica], exogenous: np.ndarray, *, train: TrainSettings, tune_settings: TrialSettings,
             storage: str, name: str, callback: CausalTrialCallback) -> None:
    """Run one Tune trial per spec of `callback.specs` (a grid over their names); `callback` records the outcomes.

    A failed trial does not stop the others.
    """
    trainable = tune.with_parameters(causal_trial, specs=callback.specs, replicas=replicas, exogenous=exogenous,
                                     train=train.model_dump(), num_threads=int(tune_settings.cpus_per_trial))
    trainable = tune.with_resources(trainable, {"cpu": tune_settings.cpus_per_trial})
    tuner = tune.Tuner(
        trainable, param_space={"name": tune.grid_search(list(callback.specs))},
        tune_config=tune.TuneConfig(max_concurrent_trials=tune_settings.max_concurrent_trials),
        run_config=tune.RunConfig(name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage,
                                  callbacks=[callback], verbose=1))
    tuner.fit()
