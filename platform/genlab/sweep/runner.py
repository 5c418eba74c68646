"""Run a defense sweep end to end: data, poisons, Ray Data purification, Ray Tune trials, MLflow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import ray
from mlflow.tracking import MlflowClient
from ray import tune

from genlab.data import load_dataset
from genlab.fileio import write_json_atomic, write_text_atomic
from genlab.runtime import init_ray
from genlab.sweep.config import SweepConfig
from genlab.sweep.mlflow_callback import MlflowTrialCallback
from genlab.sweep.plan import build_training_sets, poison_for, trial_name
from genlab.sweep.report import format_table, markdown_table, pareto_plot, write_csv
from genlab.sweep.trainable import defense_trial
from genlab.tracking import experiment_id, log_params, params_for, standard_tags, tracking_uri, ui_command


@dataclass
class SweepResult:
    """What a sweep produced: one row per trial, the parent run id, and whether every trial finished."""

    rows: list[dict[str, Any]]
    parent_run_id: str
    all_finished: bool


def run_sweep(cfg: SweepConfig, out_dir: Path) -> SweepResult:
    """Run every (attack, purifier setting, seed) trial; write reports to `out_dir` and MLflow."""
    out_dir = Path(out_dir).resolve()
    work_dir = Path(cfg.work_dir).resolve()
    cfg = cfg.model_copy(update={"work_dir": str(work_dir)})
    train, test = load_dataset(cfg.dataset)
    print(f"[genlab] dataset {cfg.dataset.name}: {len(train)} train / {len(test)} test images {train.shape}, "
          f"hash {train.hash[:12]}")
    uri = tracking_uri()
    client = MlflowClient(uri)
    exp_id = experiment_id(cfg.experiment)
    tags = standard_tags(dataset_hash=train.hash, seed=cfg.seed)
    parent = client.create_run(exp_id, run_name=f"sweep-{cfg.dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                               tags=tags).info.run_id
    params = params_for(cfg)
    log_params(client, parent, params)
    try:
        init_ray(cfg.ray)
        poisons = {a.key: poison_for(cfg, a, train, work_dir / "poisons") for a in cfg.attacks}
        for name, poison in poisons.items():
            client.log_dict(parent, poison.metadata(), f"poisons/{name}.json")
        sets = build_training_sets(cfg, train, poisons, out_dir)
        refs = {s.key: ray.put((s.images, s.labels)) for s in sets}
        specs = [{"name": trial_name(s.attack, s.settings, s.steps, seed), "data_key": s.key, "attack": s.attack,
                  "purifier": s.settings.name, "purifier_params": s.settings.params(), "seed": seed,
                  "purify_images_per_s": s.purify_images_per_s} for s in sets for seed in cfg.seeds]
        callback = MlflowTrialCallback(tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent, tags=tags,
                                       params=params, grids={s.key: s.grid_path for s in sets})
        _run_tune(cfg, specs, refs, test, poisons, callback, work_dir)
        rows = []
        for spec in specs:
            finished = spec["name"] in callback.finished
            final = callback.final.get(spec["name"], {})
            rows.append({"attack": spec["attack"], "purifier": spec["purifier"],
                         "purifier_params": spec["purifier_params"], "seed": spec["seed"],
                         "natural_accuracy": final.get("natural_accuracy") if finished else None,
                         "poison_success_rate": final.get("poison_success_rate") if finished else None,
                         "purify_images_per_s": spec["purify_images_per_s"], "run_name": spec["name"],
                         "status": "FINISHED" if finished else "FAILED"})
        all_finished = all(row["status"] == "FINISHED" for row in rows)
        _write_reports(client, parent, rows, out_dir)
        client.set_terminated(parent, "FINISHED" if all_finished else "FAILED")
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    print(format_table(rows))
    print(f"\n[genlab] {len(rows)} trials, {sum(r['status'] == 'FINISHED' for r in rows)} finished; "
          f"summary: {out_dir / 'summary.json'}")
    print(f"[genlab] look at the runs: {ui_command(uri)}")
    return SweepResult(rows, parent, all_finished)


def _run_tune(cfg: SweepConfig, specs: list[dict[str, Any]], refs: dict[str, Any], test: Any, poisons: dict[str, Any],
              callback: MlflowTrialCallback, work_dir: Path) -> None:
    """Run one Tune trial per spec (a grid over the specs); the callback records the outcomes."""
    trainable = tune.with_parameters(
        defense_trial, training_sets=refs, test=test, poisons=poisons, classifier=cfg.classifier.model_dump(),
        fail_matching=cfg.faults.fail_trials_matching, num_threads=int(cfg.tune.cpus_per_trial))
    trainable = tune.with_resources(trainable, {"cpu": cfg.tune.cpus_per_trial, "gpu": cfg.tune.gpus_per_trial})
    storage = cfg.tune.storage_path or str(work_dir / "ray_results")
    tuner = tune.Tuner(
        trainable, param_space={"spec": tune.grid_search(specs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=cfg.tune.max_concurrent_trials),
        run_config=tune.RunConfig(name=f"{cfg.experiment}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage,
                                  callbacks=[callback], verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=cfg.tune.max_failures)))
    tuner.fit()


def _write_reports(client: MlflowClient, parent: str, rows: list[dict[str, Any]], out_dir: Path) -> None:
    """Write summary.json, results CSV/markdown and the Pareto plot; log them to the parent run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "summary.json", {"trials": rows})
    write_text_atomic(out_dir / "results.md", markdown_table(rows))
    for path in (write_csv(rows, out_dir / "results.csv"), out_dir / "results.md", out_dir / "summary.json",
                 pareto_plot(rows, out_dir / "pareto.png")):
        client.log_artifact(parent, str(path), "report")
