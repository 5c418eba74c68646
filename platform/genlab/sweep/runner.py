"""Run a defense sweep end to end: data, poisons, Ray Data purification, Ray Tune trials, MLflow.

A sweep records `<work_dir>/sweeps/<experiment>.json` (its config, parent run and Tune path)
before the trials start, so `--resume` after a killed driver restores the Tune experiment
(`Tuner.restore`), keeps every trial that finished (MLflow is the record) and reruns only
the others, under the same parent run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from ray import tune

from genlab.config import validate
from genlab.data import load_dataset
from genlab.errors import ConfigError
from genlab.fileio import write_json_atomic, write_text_atomic
from genlab.runtime import init_ray
from genlab.sweep.config import SweepConfig
from genlab.sweep.mlflow_callback import MlflowTrialCallback
from genlab.sweep.plan import TrainingSet, build_training_sets, poison_for
from genlab.sweep.report import aggregate, format_table, markdown_table, pareto_plot, write_csv
from genlab.sweep.search import grid_specs, search_plan
from genlab.sweep.trainable import defense_trial
from genlab.tracking import experiment_id, log_params, params_for, standard_tags, tracking_uri, ui_command


@dataclass
class SweepResult:
    """What a sweep produced: one row per trial, the parent run id, and whether every trial finished."""

    rows: list[dict[str, Any]]
    parent_run_id: str
    all_finished: bool


def state_path(work_dir: str | Path, experiment: str) -> Path:
    """Return the file recording the latest sweep of `experiment` (for `--resume`)."""
    return Path(work_dir).resolve() / "sweeps" / f"{experiment}.json"


def load_resume_state(work_dir: str | Path, experiment: str) -> tuple[SweepConfig, dict[str, Any]]:
    """Return (config, state) of the latest sweep to resume; ConfigError if there is none."""
    path = state_path(work_dir, experiment)
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist (run the sweep without --resume first)")
    state = json.loads(path.read_text())
    return validate(SweepConfig, state["config"]), state


def tune_experiment_path(storage_path: str | None, work_dir: Path, name: str) -> str:
    """Return where Tune keeps the sweep `name`: `<storage_path>/<name>`, with `<work_dir>/ray_results` when unset.

    An `s3://` or `gs://` URI stays a URI string (Tune writes there through pyarrow, and the
    resume state keeps it); a local directory is made absolute.
    """
    if storage_path is not None and "://" in storage_path:
        return f"{storage_path.rstrip('/')}/{name}"
    return str(Path(storage_path or work_dir / "ray_results").resolve() / name)


def run_sweep(cfg: SweepConfig, out_dir: Path, *, resume_state: dict[str, Any] | None = None) -> SweepResult:
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
    params = params_for(cfg)
    if resume_state is None:
        parent = client.create_run(exp_id, run_name=f"sweep-{cfg.dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                   tags=tags).info.run_id
        log_params(client, parent, params)
        tune_path = tune_experiment_path(cfg.tune.storage_path, work_dir,
                                         f"{cfg.experiment}-{time.strftime('%Y%m%d-%H%M%S')}")
        write_json_atomic(state_path(work_dir, cfg.experiment), {"config": cfg.model_dump(mode="json"),
                                                                 "parent_run_id": parent, "tune_path": tune_path})
    else:
        parent, tune_path = resume_state["parent_run_id"], resume_state["tune_path"]
        client.update_run(parent, status="RUNNING")
        print(f"[genlab] resuming sweep {parent} from {tune_path}")
    try:
        init_ray(cfg.ray)
        poisons = {a.key: poison_for(cfg, a, train, test, work_dir / "poisons") for a in cfg.attacks}
        for name, poison in poisons.items():
            client.log_dict(parent, poison.metadata(), f"poisons/{name}.json")
        sets = build_training_sets(cfg, train, poisons, out_dir)
        refs = {s.key: ray.put((s.images, s.labels)) for s in sets}
        callback = MlflowTrialCallback(tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent, tags=tags,
                                       params=params, grids={s.key: s.grid_path for s in sets},
                                       full_epochs=cfg.classifier.epochs)
        ran = _run_tune(cfg, sets, refs, test, poisons, callback, tune_path)
        # The grid's rows in plan order; Optuna's are the trials it proposed.
        specs = ran if cfg.tune.search == "optuna" else grid_specs(sets, cfg.seeds)
        rows = [_row(spec, callback) for spec in specs]
        all_finished = all(row["status"] == "FINISHED" for row in rows)
        _write_reports(client, parent, rows, _purification_counts(sets), out_dir)
        client.set_terminated(parent, "FINISHED" if all_finished else "FAILED")
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    print(format_table(rows))
    print(f"\n[genlab] {len(rows)} trials, {sum(r['status'] == 'FINISHED' for r in rows)} finished; "
          f"summary: {out_dir / 'summary.json'}")
    print(f"[genlab] look at the runs: {ui_command(uri)}")
    return SweepResult(rows, parent, all_finished)


def _row(spec: dict[str, Any], callback: MlflowTrialCallback) -> dict[str, Any]:
    """Return the summary row of one trial, with the metrics exactly as logged to MLflow."""
    finished = spec["name"] in callback.finished
    final = callback.final.get(spec["name"], {}) if finished else {}
    return {"attack": spec["attack"], "purifier": spec["purifier"], "purifier_params": spec["purifier_params"],
            "seed": spec["seed"], "natural_accuracy": final.get("natural_accuracy"),
            "poison_success_rate": final.get("poison_success_rate"),
            "purify_images_per_s": spec["purify_images_per_s"], "run_name": spec["name"],
            "status": "FINISHED" if finished else "FAILED", "stopped_early": spec["name"] in callback.stopped_early}


def _purification_counts(sets: list[TrainingSet]) -> dict[str, int]:
    """Return how many purifier settings ran a Ray Data stage in this sweep and how many came whole from the cache."""
    purified = {s.settings.model_dump_json(): s.stage_ran for s in sets if s.settings.name != "none"}
    return {"purification_stage_runs": sum(purified.values()),
            "purification_settings_from_cache": len(purified) - sum(purified.values())}


def _run_tune(cfg: SweepConfig, sets: list[TrainingSet], refs: dict[str, Any], test: Any, poisons: dict[str, Any],
              callback: MlflowTrialCallback, tune_path: str) -> list[dict[str, Any]]:
    """Run the trials `cfg.tune.search` chooses (genlab.sweep.search), or restore an interrupted run of them.

    Returns the spec of every trial Tune ran or restored, in trial order.
    """
    fail_once_dir = Path(cfg.work_dir) / "faults" / tune_path.rsplit("/", 1)[1] if cfg.faults.fail_once else None
    trainable = tune.with_parameters(
        defense_trial, training_sets=refs, test=test, poisons=poisons, classifier=cfg.classifier.model_dump(),
        fail_matching=cfg.faults.fail_trials_matching, num_threads=int(cfg.tune.cpus_per_trial),
        finished=frozenset(callback.finished), fail_once_dir=fail_once_dir and str(fail_once_dir))
    trainable = tune.with_resources(trainable, {"cpu": cfg.tune.cpus_per_trial, "gpu": cfg.tune.gpus_per_trial})
    storage_path, name = tune_path.rsplit("/", 1)
    run_config = tune.RunConfig(name=name, storage_path=storage_path,
                                callbacks=[callback], verbose=1,
                                failure_config=tune.FailureConfig(max_failures=cfg.tune.max_failures))
    if tune.Tuner.can_restore(tune_path):
        tuner = tune.Tuner.restore(tune_path, trainable, resume_unfinished=True, restart_errored=True)
        # Tune pickled the first attempt's callback with the experiment; use the fresh one, which
        # knows from MLflow which trials already finished.
        tuner._local_tuner.get_run_config().callbacks = [callback]
    else:
        plan = search_plan(cfg, sets)
        tuner = tune.Tuner(trainable, param_space=plan.param_space, tune_config=plan.tune_config, run_config=run_config)
    return [result.config["spec"] for result in tuner.fit()]


def _write_reports(client: MlflowClient, parent: str, rows: list[dict[str, Any]], purification: dict[str, int],
                   out_dir: Path) -> None:
    """Write summary.json, results CSV/markdown and the Pareto plot; log them (and `purification`) to the parent run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    aggregates = aggregate(rows)
    write_json_atomic(out_dir / "summary.json", {"trials": rows, "aggregates": aggregates, "purification": purification})
    client.log_batch(parent, metrics=[Metric(key, float(value), 0, 0) for key, value in purification.items()])
    write_text_atomic(out_dir / "results.md", markdown_table(rows, aggregates))
    for path in (write_csv(rows, out_dir / "results.csv"), out_dir / "results.md", out_dir / "summary.json",
                 pareto_plot(rows, out_dir / "pareto.png")):
        client.log_artifact(parent, str(path), "report")
