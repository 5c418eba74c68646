"""Craft a PoisonSet for a dataset and attack config; cache it and log it to MLflow with its provenance.

Local (MLflow at sqlite:///mlflow.db in the working directory), digits 16x16:
    python jobs/craft_poisons.py --config conf/attacks/narcissus.yaml
    python jobs/craft_poisons.py --config conf/attacks/narcissus.yaml attack.epsilon=8 seed=1
    python jobs/craft_poisons.py --config conf/attacks/gradient_matching.yaml attack.trials=20 parallel=true
On a cluster (the tracking URI points at the shared MLflow server):
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/craft_poisons.py --config conf/attacks/narcissus.yaml dataset.name=cifar10 dataset.download=true
The set lands in <work_dir>/poisons/<attack>-<key>/ (key = dataset hash + attack config + seed),
the cache the defense sweep reads. A sweep crafts against the classifier rows of its pool split, so
it reuses (or imports, `attacks: [{name: imported, path: <printed path>}]`) a set crafted with the
same `split` (`split={}`: the default sweep's); without one the set is against the whole training set. Targeted attacks are crafted trial by
trial (trials.json beside the poisons); a killed run started again crafts only the unfinished trials.
Then look at the runs:
    mlflow ui --backend-store-uri sqlite:///mlflow.db
Exit codes: 0 done, 1 failed (e.g. an inconsistent cached file), 2 bad config.
"""

import time
from pathlib import Path

import numpy as np

from genlab.attacks.crafting import CraftPoisonsConfig, craft_cached
from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.data.splits import split_pool
from genlab.fileio import write_json_atomic
from genlab.runtime import init_ray
from genlab.tracking import tracked_run, ui_command


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/attacks/narcissus.yaml")
    cfg = load_config(CraftPoisonsConfig, args.config, args.overrides)
    if cfg.parallel:
        init_ray(cfg.ray)  # targeted trials fan out as Ray tasks
    train, test = load_dataset(cfg.dataset)
    if cfg.split is not None:
        train = split_pool(train, test, cfg.split).classifier
    print(f"[genlab] crafting {cfg.attack.key} on {cfg.dataset.name}: {len(train)} train images {train.shape}, "
          f"hash {train.hash[:12]}")
    with tracked_run(cfg.experiment, run_name=f"{cfg.attack.key}-{cfg.dataset.name}-seed{cfg.seed}", config=cfg,
                     seed=cfg.seed, dataset_hash=train.hash, tags={"genlab.attack": cfg.attack.name}) as run:
        started = time.perf_counter()
        crafted = craft_cached(cfg.attack, train, test, cfg.seed, Path(cfg.work_dir) / "poisons")
        metrics = {"craft_seconds": time.perf_counter() - started, "trials_crafted": len(crafted.crafted_trials),
                   "trials_total": max(1, len(crafted.trial_paths))}
        if crafted.poison is not None:
            poison = crafted.poison
            moved = np.abs(poison.images.astype(np.int16) - train.images[poison.base_indices].astype(np.int16))
            metrics.update(num_poisons=len(poison.base_indices), max_pixel_change=int(moved.max()))
            run.client.set_tag(run.run_id, "genlab.poison_hash", poison.hash)
        if crafted.provenance["surrogate"] is not None:
            run.client.set_tag(run.run_id, "genlab.surrogate_hash", crafted.provenance["surrogate"]["hash"])
        run.log_metrics(metrics)
        run.client.log_artifacts(run.run_id, str(crafted.directory), "poisons")
    summary = {"run_id": run.run_id, "directory": str(crafted.directory), "metrics": metrics,
               "poison_path": str(crafted.poison_path) if crafted.poison_path else None,
               "trial_paths": [str(p) for p in crafted.trial_paths], "crafted_trials": crafted.crafted_trials}
    if args.out is not None:
        write_json_atomic(args.out / "summary.json", summary)
    if crafted.poison_path is not None:
        print(f"[genlab] poisons at {crafted.poison_path}; in a sweep: {{name: imported, path: {crafted.poison_path}}}")
    else:
        print(f"[genlab] {len(crafted.trial_paths)} per-trial poison sets in {crafted.directory}")
    print(f"[genlab] MLflow: {ui_command()}")
    return 0


if __name__ == "__main__":
    run_job(main)
