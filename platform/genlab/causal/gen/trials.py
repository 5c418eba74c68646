"""Ray Tune side of the Causal Gen jobs: the trainable, the MLflow callback and the Tune run.

One trial = one model over one structural prior, trained on every replica ((seed, split)
table) at once. The trial reports `train_loss` every few epochs and, at the end, its OOD and
train errors per replica. The driver-side callback (a genlab.tracking.NestedRunCallback) is
the only MLflow writer: a nested run per trial (tag `mlflow.parentRunId`) with its params,
drawing, `train_loss` per epoch and `ood_mse` per seed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.entities import Metric
from pydantic import TypeAdapter
from ray import tune

from genlab.causal.gen.config import TrialSettings
from genlab.causal.gen.train import Replica, TrainSettings, ood_errors
from genlab.config import StrictModel
from genlab.models.causal import ModelSettings
from genlab.tracking import NestedRunCallback

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


class CausalTrialCallback(NestedRunCallback):
    """One nested MLflow run per trial (params, graph drawing, `train_loss` per epoch, `ood_mse` / `train_mse`
    per seed); keeps each finished trial's errors per replica in `replica_errors`.

    `run` are NestedRunCallback's arguments (tracking_uri, experiment_id, parent_run_id, tags, params).
    """

    def __init__(self, *, specs: dict[str, dict[str, Any]], replica_seeds: list[int], **run: Any) -> None:
        super().__init__(**run)
        self.specs, self.replica_seeds = specs, np.asarray(replica_seeds)
        self.replica_errors: dict[str, dict[str, np.ndarray]] = {}  # trial name -> ood_mse / train_mse per replica [R]

    def trial_params(self, trial: Any) -> dict[str, str]:
        """Return the spec's params (model or candidate graph)."""
        return self.specs[self.trial_name(trial)]["params"]

    def trial_tags(self, trial: Any) -> dict[str, str]:
        """Return the Tune trial id as tag `genlab.trial_id`."""
        return {"genlab.trial_id": trial.trial_id}

    def on_run_start(self, run_id: str, trial: Any) -> None:
        """Log the drawing of the trial's graph (if its spec has one) under `graph/`."""
        drawing = self.specs[self.trial_name(trial)]["drawing"]
        if drawing:
            self.client.log_artifact(run_id, drawing, "graph")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Keep the errors per replica of a final result, then log the result's metrics."""
        if "ood_mse_per_replica" in result:
            self.replica_errors[self.trial_name(trial)] = {key: np.asarray(result[f"{key}_per_replica"])
                                                           for key in ("ood_mse", "train_mse")}
        super().on_trial_result(iteration, trials, trial, result, **info)

    def result_metrics(self, trial: Any, result: dict) -> list[Metric]:
        """Return `train_loss` at its epoch; on the final result also `ood_mse` / `train_mse` per seed (step = seed
        index, standardised units^2)."""
        now = int(time.time() * 1000)
        metrics = []
        if "train_loss" in result:
            metrics.append(Metric("train_loss", float(result["train_loss"]), now, int(result["epoch"])))
        if "ood_mse_per_replica" in result:
            for step, seed in enumerate(dict.fromkeys(self.replica_seeds.tolist())):
                for key, values in self.replica_errors[self.trial_name(trial)].items():
                    metrics.append(Metric(key, float(values[self.replica_seeds == seed].mean()), now, step))
        return metrics


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
