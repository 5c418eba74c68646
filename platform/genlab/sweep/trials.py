"""Step 4 of the defense sweep: one classifier per trial (attack, purifier setting, seed) under Ray Tune.

The trials `tune.search` chooses (`genlab.sweep.search`) run `genlab.sweep.trainable.defense_trial`
with the purified training sets in Ray's object store; `MlflowTrialCallback` mirrors each into a
run nested under the sweep's run. A sweep whose Tune experiment exists at `tune_path` (a killed
driver, `--resume`) is restored: trials MLflow records as finished are kept, the rest rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.sweep.config import SweepConfig
from genlab.sweep.defended_sets import is_defense
from genlab.sweep.generative_data import row_statement
from genlab.sweep.mlflow_callback import DETECTION_METRICS, MlflowTrialCallback
from genlab.sweep.provisioning import model_kinds
from genlab.sweep.search import grid_specs, search_plan
from genlab.sweep.trainable import defense_trial
from genlab.sweep.training_sets import TrainingSet, attack_variants
from genlab.tracking import TrackedRun, params_for, standard_tags, tracking_uri
from genlab.train.defenses import DEFENSE_NAMES


def run_trials(cfg: SweepConfig, sets: list[TrainingSet], test: ImageSet, poisons: dict[str, PoisonSet], *,
               run: TrackedRun, tune_path: str, dataset_hash: str,
               generative_training: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Run (or finish) every trial; return one summary row per trial.

    Rows come in plan order (Optuna's: the trials it proposed) with the trial's `attack` (the
    attack's key; `poison_key` tells its target-class variants apart), `target_class`,
    `purifier`, `purifier_params`, `seed`, `run_name`, final `natural_accuracy`,
    `poison_success_rate` (trigger x1) and `poison_success_rate_amplified` (Narcissus' x3 trigger,
    else None) (fractions in [0, 1], exactly as logged to MLflow; None unless it finished),
    `targets` (a targeted attack's target images, else None), `generative_training` (what the
    purifier's generative models learnt from, `generative_training` per kind; `-` for none),
    `purify_images_per_s`, `status` (FINISHED or FAILED) and `stopped_early`; `kind`
    (purifier or defense), `cost_s` (seconds the purifier or defense added to the trial) and, for
    defenses that drop rows, `detection_precision` / `detection_recall` on the known poisoned rows.
    """
    callback = MlflowTrialCallback(tracking_uri=tracking_uri(), experiment_id=run.experiment_id, parent_run_id=run.run_id,
                                   tags=standard_tags(dataset_hash=dataset_hash, seed=cfg.seed), params=params_for(cfg),
                                   grids={s.key: s.grid_path for s in sets}, full_epochs=cfg.classifier.epochs)
    ran = _fit(cfg, sets, test, poisons, callback, tune_path)
    specs = ran if cfg.tune.search == "optuna" else grid_specs(sets, cfg.seeds)
    families = attack_variants(cfg)
    statements = {s.key: row_statement(model_kinds(s.settings), generative_training or {}) for s in sets}
    return [_row(spec, callback, families, poisons[spec["attack"]], statements[spec["data_key"]]) for spec in specs]


def _fit(cfg: SweepConfig, sets: list[TrainingSet], test: ImageSet, poisons: dict[str, PoisonSet],
         callback: MlflowTrialCallback, tune_path: str) -> list[dict[str, Any]]:
    """Run the trials `cfg.tune.search` chooses, or restore an interrupted run of them.

    Returns the spec of every trial Tune ran or restored, in trial order.
    """
    refs = {s.key: s.data for s in sets}  # defense sets share their attack's raw set's ref
    defenses = {s.key: s.settings.model_dump(mode="json") for s in sets if is_defense(s.settings)}
    fail_once_dir = Path(cfg.work_dir) / "faults" / tune_path.rsplit("/", 1)[1] if cfg.faults.fail_once else None
    trainable = tune.with_parameters(
        defense_trial, training_sets=refs, test=test, poisons=poisons, classifier=cfg.classifier.model_dump(),
        defenses=defenses,
        fail_matching=cfg.faults.fail_trials_matching, num_threads=int(cfg.tune.cpus_per_trial),
        finished=frozenset(callback.finished), fail_once_dir=fail_once_dir and str(fail_once_dir),
        checkpoint_every=cfg.tune.checkpoint_every, kill_at_epoch=cfg.faults.kill_at_epoch)
    trainable = tune.with_resources(trainable, {"cpu": cfg.tune.cpus_per_trial, "gpu": cfg.tune.gpus_per_trial})
    storage_path, name = tune_path.rsplit("/", 1)
    run_config = tune.RunConfig(name=name, storage_path=storage_path,
                                callbacks=[callback], verbose=1,
                                failure_config=tune.FailureConfig(max_failures=cfg.tune.max_failures),
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=1))
    if tune.Tuner.can_restore(tune_path):
        # Tune pickled the first attempt's callback with the experiment; it is restored as the fresh
        # one, which knows from MLflow which trials already finished.
        with callback.replacing_restored():
            tuner = tune.Tuner.restore(tune_path, trainable, resume_unfinished=True, restart_errored=True)
    else:
        plan = search_plan(cfg, sets)
        tuner = tune.Tuner(trainable, param_space=plan.param_space, tune_config=plan.tune_config, run_config=run_config)
    return [result.config["spec"] for result in tuner.fit()]


def _row(spec: dict[str, Any], callback: MlflowTrialCallback, families: dict[str, str], poison: PoisonSet,
         generative_training: str) -> dict[str, Any]:
    """Return the summary row of one trial, with the metrics exactly as logged to MLflow."""
    finished = spec["name"] in callback.finished
    final = callback.final.get(spec["name"], {}) if finished else {}
    targeted = poison.kind == "targeted"
    return {"attack": families.get(spec["attack"], spec["attack"]), "poison_key": spec["attack"],
            "target_class": None if targeted else poison.target_class,
            "purifier": spec["purifier"], "purifier_params": spec["purifier_params"],
            "seed": spec["seed"], "natural_accuracy": final.get("natural_accuracy"),
            "poison_success_rate": final.get("poison_success_rate"),
            "poison_success_rate_amplified": final.get("poison_success_rate_amplified"),
            "targets": len(poison.target_test_indices) if targeted else None,
            "target_rows": " ".join(map(str, poison.target_test_indices)) if targeted else None,
            "generative_training": generative_training,
            "purify_images_per_s": spec["purify_images_per_s"], "run_name": spec["name"],
            "status": "FINISHED" if finished else "FAILED", "stopped_early": spec["name"] in callback.stopped_early,
            "kind": "defense" if spec["purifier"] in DEFENSE_NAMES else "purifier", "cost_s": final.get("cost_s"),
            **{key: final.get(key) for key in DETECTION_METRICS}}
