"""Run a defense sweep end to end: `run_sweep` reads as its five steps.

0. split the pool once (seeded) into generative-training, classifier-training and test rows
   (genlab.data.splits): the generative models never see a classifier or test row,
1. craft (or load) the poisons against the classifier's rows (genlab.sweep.training_sets), all but
   the defense-aware ones, which need step 2's purifiers,
2. provision the generative models the purifiers need, trained on the rows `generative_data`
   names (genlab.sweep.generative_data), in Ray tasks while step 1 crafts on the driver (after it
   for the `poisoned` ablation); then craft the defense-aware poisons through them,
3. purify the training sets through Ray Data, each clean row once for every attack (the
   `defenses:` train on the raw poisoned sets: genlab.sweep.defended_sets),
4. train one classifier per trial under Ray Tune, each trial a nested MLflow run (genlab.sweep.trials),
5. report: tables, means over seeds and the Pareto plot (genlab.sweep.report).

All five run inside the sweep's MLflow run (`genlab.tracking.tracked_run`). A sweep records
`<work_dir>/sweeps/<experiment>.json` (its config, run and Tune path) before the steps start, so
`--resume` after a killed driver reopens the same run, restores the Tune experiment, keeps
every trial that finished (MLflow is the record) and reruns only the others; the steps before
the trials find their results in the model, poison and purification caches.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.config import validate
from genlab.data import load_dataset
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.data.splits import PoolSplit, split_pool
from genlab.errors import ConfigError
from genlab.fileio import write_json_atomic
from genlab.runtime import init_ray
from genlab.sweep.config import SweepConfig
from genlab.sweep.defended_sets import defense_training_sets
from genlab.sweep.generative_data import generative_training_block, generative_training_set
from genlab.sweep.report import format_means, format_table, write_report
from genlab.sweep.training_sets import (
    craft_poison_sets,
    is_defense_aware,
    provision_models,
    purification_counts,
    purify_training_sets,
    sweep_models_training_meanwhile,
    train_sweep_models,
)
from genlab.sweep.trials import run_trials
from genlab.tracking import TrackedRun, tracked_run, ui_command


@dataclass
class SweepResult:
    """What a sweep produced: one row per trial, the parent run id, and whether every trial finished."""

    rows: list[dict[str, Any]]
    parent_run_id: str
    all_finished: bool


def run_sweep(cfg: SweepConfig, out_dir: Path, *, resume_state: dict[str, Any] | None = None) -> SweepResult:
    """Run every (attack, purifier setting, seed) trial; return one row per trial, the run id and whether all finished.

    Reports land in `out_dir` and the sweep's MLflow run; `resume_state` (`load_resume_state`)
    finishes an interrupted sweep instead of starting one.
    """
    out_dir = Path(out_dir).resolve()
    cfg = cfg.model_copy(update={"work_dir": str(Path(cfg.work_dir).resolve())})
    pool_train, pool_test = load_dataset(cfg.dataset)
    split = split_pool(pool_train, pool_test, cfg.data_split())
    train, test = split.classifier, split.test
    if cfg.target_classes and max(cfg.target_classes) >= len(train.classes):
        raise ConfigError(f"config key target_classes: {cfg.target_classes}, but {cfg.dataset.name} has "
                          f"{len(train.classes)} classes (0..{len(train.classes) - 1})")
    print(f"[genlab] dataset {cfg.dataset.name}: {len(split.generative)} generative / {len(train)} classifier / "
          f"{len(test)} test images {train.shape} (split seed {split.seed}), hash {train.hash[:12]}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tracked_run(cfg.experiment, run_name=f"sweep-{cfg.dataset.name}-{stamp}", config=cfg, seed=cfg.seed,
                     dataset_hash=train.hash, resume_run_id=(resume_state or {}).get("parent_run_id")) as run:
        tune_path = _tune_path(cfg, run, resume_state, stamp)
        init_ray(cfg.ray)
        aware = [attack for attack in cfg.attacks if is_defense_aware(attack)]
        plain = [attack for attack in cfg.attacks if attack not in aware]
        poisons, generative, block = _craft_and_train(cfg, split, run, plain)
        settings = provision_models(cfg, generative)
        poisons |= craft_poison_sets(cfg, settings, train, test, run, attacks=aware)
        sets = purify_training_sets(cfg, settings, train, poisons, out_dir)
        trial_sets = sets + defense_training_sets(cfg, sets, train, poisons, out_dir)
        rows = run_trials(cfg, trial_sets, test, poisons, run=run, tune_path=tune_path, dataset_hash=train.hash,
                          generative_training=block)
        aggregates = write_report(run, rows, purification_counts(sets), out_dir,
                                  data={"split": split.describe(), "generative_training": block})
        all_finished = all(row["status"] == "FINISHED" for row in rows)
        run.finish_as(all_finished)
    print(format_table(rows))
    print(f"\n{format_means(aggregates)}")
    print(f"\n[genlab] {len(rows)} trials, {sum(r['status'] == 'FINISHED' for r in rows)} finished; "
          f"summary: {out_dir / 'summary.json'}")
    print(f"[genlab] look at the runs: {ui_command()}")
    return SweepResult(rows, run.run_id, all_finished)


def _craft_and_train(cfg: SweepConfig, split: PoolSplit, run: TrackedRun,
                     attacks: list[Any]) -> tuple[dict[str, PoisonSet], ImageSet, dict[str, dict[str, Any]]]:
    """Craft `attacks` against the classifier's rows and train the generative models the sweep lacks; return (the
    poisons, the models' training images, summary.json's `generative_training` block).

    The block is counted before any model trains, so a disjoint sweep whose models would see a classifier or
    test row stops with a ConfigError before it trains or registers them. The models train in Ray tasks while
    the driver crafts, unless they learn from the poisons (`generative_data: poisoned`), which must exist first.
    """
    train, test = split.classifier, split.test
    if cfg.generative_data == "poisoned":
        poisons = craft_poison_sets(cfg, [], train, test, run, attacks=attacks)
        generative, description = generative_training_set(cfg, split, poisons)
        block = generative_training_block(cfg, generative, description, split)
        train_sweep_models(cfg, generative)
        return poisons, generative, block
    generative, description = generative_training_set(cfg, split, {})
    block = generative_training_block(cfg, generative, description, split)
    with sweep_models_training_meanwhile(cfg, generative):
        poisons = craft_poison_sets(cfg, [], train, test, run, attacks=attacks)
    return poisons, generative, block


def _tune_path(cfg: SweepConfig, run: TrackedRun, resume_state: dict[str, Any] | None, stamp: str) -> str:
    """Return where Tune keeps this sweep: the resumed sweep's path, or a new one, recorded for `--resume`."""
    if resume_state is not None:
        tune_path = checked_resume_path(resume_state["tune_path"], cfg.tune.storage_path, Path(cfg.work_dir))
        print(f"[genlab] resuming sweep {run.run_id} from {tune_path}")
        return tune_path
    tune_path = tune_experiment_path(cfg.tune.storage_path, Path(cfg.work_dir), f"{cfg.experiment}-{stamp}")
    write_json_atomic(state_path(cfg.work_dir, cfg.experiment),
                      {"config": cfg.model_dump(mode="json"), "parent_run_id": run.run_id, "tune_path": tune_path})
    return tune_path


def state_path(work_dir: str | Path, experiment: str) -> Path:
    """Return the file recording the latest sweep of `experiment` (for `--resume`)."""
    return Path(work_dir).resolve() / "sweeps" / f"{experiment}.json"


def load_resume_state(work_dir: str | Path, experiment: str,
                      storage_path: str | None = None) -> tuple[SweepConfig, dict[str, Any]]:
    """Return (config, state) of the latest sweep to resume; ConfigError if there is none, or if its Tune state is
    not an experiment in `storage_path` (the invoking config's `tune.storage_path`; None = `<work_dir>/ray_results`)."""
    path = state_path(work_dir, experiment)
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist (run the sweep without --resume first)")
    state = json.loads(path.read_text())
    checked_resume_path(state.get("tune_path"), storage_path, Path(work_dir))
    return validate(SweepConfig, state["config"]), state


def checked_resume_path(tune_path: Any, storage_path: str | None, work_dir: Path) -> str:
    """Return `tune_path` if it names an experiment directly inside the configured Tune storage, else raise ConfigError.

    Tune's experiment state is pickled, so `--resume` restores only from where this config says
    Tune keeps its experiments (`tune.storage_path`, default `<work_dir>/ray_results`), never
    from a path the resume state file was edited to name.
    """
    storage = tune_experiment_path(storage_path, work_dir, "")
    parent, _, name = str(tune_path).rstrip("/").rpartition("/")
    local = "://" not in storage
    inside = (Path(parent).resolve() == Path(storage).resolve()) if local else (f"{parent}/" == storage)
    if not (isinstance(tune_path, str) and inside and name and name not in (".", "..")):
        raise ConfigError(f"refusing to resume from Tune state {tune_path!r}: it is not an experiment in the "
                          f"configured tune.storage_path {storage.rstrip('/') or '/'}")
    return tune_path


def tune_experiment_path(storage_path: str | None, work_dir: Path, name: str) -> str:
    """Return where Tune keeps the sweep `name`: `<storage_path>/<name>`, with `<work_dir>/ray_results` when unset.

    An `s3://` or `gs://` URI stays a URI string (Tune writes there through pyarrow, and the
    resume state keeps it); a local directory is made absolute.
    """
    if storage_path is not None and "://" in storage_path:
        return f"{storage_path.rstrip('/')}/{name}"
    return str(Path(storage_path or work_dir / "ray_results").resolve() / name)
