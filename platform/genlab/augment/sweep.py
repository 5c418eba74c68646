"""The LAVAE sweep: a grid over config keys, one Ray Tune trial per combination.

Each trial runs `run_experiment` with its overrides and reports the summary's headline
numbers with a checkpoint holding `result.json` (summary + per-epoch history) and the
artifacts; a Tune callback on the driver (the only MLflow writer) turns each trial into a
nested MLflow run (`runner.LatentAugmentTrialRuns`).
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from genlab.augment.config import LatentAugmentConfig, SweepSettings
from genlab.augment.experiment import SUMMARY_KEYS, run_experiment
from genlab.config import apply_overrides, validate
from genlab.data import ImageSet
from genlab.fileio import write_json_atomic


def base_config(cfg: LatentAugmentConfig) -> dict[str, Any]:
    """Return `cfg` as plain data with the sweep section emptied (what every trial starts from)."""
    return cfg.model_copy(update={"sweep": SweepSettings()}).model_dump(mode="json")


def trial_config(base: dict[str, Any], overrides: list[str]) -> LatentAugmentConfig:
    """Return the validated config of one trial: `base` plus its `key=value` overrides (ConfigError if invalid)."""
    return validate(LatentAugmentConfig, apply_overrides(base, overrides))


def plan_trials(cfg: LatentAugmentConfig) -> list[dict[str, Any]]:
    """Return one `{"name", "overrides"}` per combination of `cfg.sweep.grid`, each validated up front."""
    keys = list(cfg.sweep.grid)
    base = base_config(cfg)
    trials = []
    for values in itertools.product(*(cfg.sweep.grid[key] for key in keys)):
        overrides = [f"{key}={json.dumps(value)}" for key, value in zip(keys, values)]
        trial_config(base, overrides)
        label = "-".join(key.split(".")[-1] + re.sub(r'[\s"]', "", json.dumps(value))
                         for key, value in zip(keys, values))
        trials.append({"name": f"lavae-{label}", "overrides": overrides})
    return trials


def latent_augment_trial(config: dict[str, Any], *, base: dict[str, Any], train: ImageSet, test: ImageSet,
                         threads: int) -> None:
    """Tune trainable: run one experiment; `tune.report` the headline numbers (nats/image, norms) + a checkpoint."""
    torch.set_num_threads(threads)
    cfg = trial_config(base, config["trial"]["overrides"])
    with tempfile.TemporaryDirectory() as tmp:
        result = run_experiment(cfg, train, test, Path(tmp) / "artifacts")
        write_json_atomic(Path(tmp) / "result.json", {"summary": result.summary, "history": result.history})
        metrics = {key: result.summary[key] for key in SUMMARY_KEYS if result.summary[key] is not None}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def run_trials(cfg: LatentAugmentConfig, trials: list[dict[str, Any]], train: ImageSet, test: ImageSet,
               storage: str, callbacks: list[tune.Callback]) -> tune.ResultGrid:
    """Run every planned trial with Ray Tune (Ray must be initialised), results under `storage`, `callbacks`
    on the driver; return the grid (one result per trial)."""
    trainable = tune.with_parameters(latent_augment_trial, base=base_config(cfg), train=train, test=test,
                                     threads=max(1, int(cfg.sweep.cpus_per_trial)))
    trainable = tune.with_resources(trainable, {"cpu": cfg.sweep.cpus_per_trial, "gpu": cfg.sweep.gpus_per_trial})
    tuner = tune.Tuner(trainable, param_space={"trial": tune.grid_search(trials)},
                       tune_config=tune.TuneConfig(max_concurrent_trials=cfg.sweep.max_concurrent_trials),
                       run_config=tune.RunConfig(name=f"{cfg.experiment}-{time.strftime('%Y%m%d-%H%M%S')}",
                                                 storage_path=storage, callbacks=callbacks, verbose=1))
    return tuner.fit()
