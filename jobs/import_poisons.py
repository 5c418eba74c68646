"""Import an externally crafted PoisonSet: validate it against the sweep's classifier rows and add it to the cache.

    python jobs/import_poisons.py path/to/poisons.npz                 # dataset of conf/defense_sweep.yaml
    python jobs/import_poisons.py path/to/poisons.npz --config conf/defense_sweep.yaml dataset.name=shapes
The poisons' row indices and dataset hash refer to the classifier's training rows of the config's pool split
(`split`, genlab.data.splits), the rows a sweep trains its classifiers on.
The file pair (poisons.npz + poisons.json) must be in the PoisonSet format (DESIGN.md). Nothing in it is
executed: arrays are read with allow_pickle=False, and any inconsistency (shape, dtype, NaN, index out of
range, dataset hash, epsilon budget, a pickled object) refuses the file with the reason (exit 1).
On success it prints the cached path, to use as `attacks: [{name: imported, path: <cached path>}]`.
"""

from pathlib import Path

from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.data.poisonset import load_poison_set_for
from genlab.data.splits import split_pool
from genlab.sweep.config import SweepConfig


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/defense_sweep.yaml",
                          extra=lambda p: p.add_argument("poison_path", type=Path, help="PoisonSet .npz file"))
    cfg = load_config(SweepConfig, args.config, args.overrides)
    split = split_pool(*load_dataset(cfg.dataset), cfg.data_split())
    poison = load_poison_set_for(args.poison_path, split.classifier, split.test)
    target = poison.save(Path(cfg.work_dir) / "poisons" / "imported" / f"{poison.attack}-{poison.hash[:16]}")
    print(f"accepted {len(poison.base_indices)} {poison.kind} poisons ({poison.attack}); cached at {target}")
    return 0


if __name__ == "__main__":
    run_job(main)
