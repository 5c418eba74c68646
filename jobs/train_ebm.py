"""Train a convergent EBM (PureGen-EBM) with persistent Langevin chains; register it in MLflow.

Local (MLflow at sqlite:///mlflow.db in the working directory), a few CPU minutes on digits:
    python jobs/train_ebm.py                                     # conf/train_ebm.yaml
    python jobs/train_ebm.py --out out/ebm-digits iterations=600 model.nf=32
    python jobs/train_ebm.py poison='{name: blend, epsilon: 32}'    # learn from a poisoned training set
    python jobs/train_ebm.py train_dataset='{name: shapes}'          # learn from another dataset
The paper's settings (ResNet EBM, 128 filters, ~65k iterations; a GPU job):
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/train_ebm.py --config conf/train_ebm_cifar10.yaml --out out/ebm-cifar10
Killed runs resume from the last checkpoint in --out when started again with the same config.
The final EBM is at <out>/model and registered as genlab-ebm-<dataset>, with the suffix
-from-<train dataset> when it learned from another dataset and -poisoned-<attack> from a poisoned one;
purify with it via the purifier config `{name: ebm, registered_model: genlab-ebm-digits}`.
Then look at the runs:
    mlflow ui --backend-store-uri sqlite:///mlflow.db
Exit codes: 0 done, 1 failed (e.g. diverged, bad checkpoint), 2 bad config.
"""

import hashlib
import json
from pathlib import Path

from genlab.attacks import AttackConfig, craft_poisons
from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.tracking import params_for, ui_command
from genlab.train.ebm import EbmTrainConfig, load_training_sets, train_ebm


class TrainEbmJobConfig(EbmTrainConfig):
    """EBM training plus the job-level switch that needs the attacks package."""

    poison: AttackConfig | None = None  # learn from the EBM's training set poisoned by this attack (crafted with `seed`)


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/train_ebm.yaml")
    cfg = load_config(TrainEbmJobConfig, args.config, args.overrides)
    ebm_train, purify_train = load_training_sets(cfg)
    name = f"genlab-ebm-{cfg.dataset.name}" + (f"-from-{cfg.train_dataset.name}" if cfg.train_dataset else "")
    if cfg.poison is not None:
        poison = craft_poisons(cfg.poison, ebm_train, cfg.seed)
        ebm_train = ebm_train.replace_rows(poison.base_indices, poison.images, poison.labels)
        name += f"-poisoned-{cfg.poison.name}"
        print(f"[genlab] EBM training set poisoned by {cfg.poison.name}: {len(poison.base_indices)} rows")
    key = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]
    out_dir = args.out or Path("out/train_ebm") / f"{name}-{key}"
    print(f"[genlab] EBM training on {len(ebm_train)} images {ebm_train.shape}; checkpoints in {out_dir}")
    result = train_ebm(cfg, ebm_train, purify_train.images, out_dir, registered_name=name, params=params_for(cfg))
    print(f"[genlab] EBM saved to {result.model_dir}" +
          (f"; registered {result.registered_name} version {result.registered_version}" if result.registered_version else ""))
    print(f"[genlab] MLflow: {ui_command()}")
    return 0


if __name__ == "__main__":
    run_job(main)
