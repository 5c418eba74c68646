"""Train a DDPM (diffusers UNet2DModel, eps-prediction on t < 250) for PureGen-DDPM purification; register it.

Local (MLflow at sqlite:///mlflow.db in the working directory), digits 16x16 in a few CPU minutes:
    python jobs/train_ddpm.py                                        # conf/train_ddpm.yaml
    python jobs/train_ddpm.py iterations=500 --out out/ddpm-quick
The paper's CIFAR-10 settings (spec 32x32 UNet, ~114 M parameters; a GPU):
    python jobs/train_ddpm.py --config conf/train_ddpm_cifar10.yaml dataset.root=data
Robustness variants (one switch each): train on shifted or on poisoned data:
    python jobs/train_ddpm.py 'train_dataset={name: shapes}'
    python jobs/train_ddpm.py 'poison={name: blend, epsilon: 32}'
On a Ray cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python jobs/train_ddpm.py --config conf/train_ddpm_cifar10.yaml
Rerunning the same command (same --out) after a kill resumes from the last checkpoint. The final
UNet lands in <out>/model and in the MLflow registry as genlab-ddpm-<dataset>; purify with
`purifiers: [{name: ddpm, registered_model: genlab-ddpm-digits}]` in a sweep config.
Exit codes: 0 done, 1 training failed (diverged, bad checkpoint), 2 bad config.
"""

from pathlib import Path

from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.fileio import write_json_atomic
from genlab.tracking import ui_command
from genlab.train.ddpm import DdpmTrainConfig, train_ddpm, training_data_name
from genlab.train.generative_common import generative_training_set


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/train_ddpm.yaml")
    cfg = load_config(DdpmTrainConfig, args.config, args.overrides)
    out = args.out or Path("out/train_ddpm") / f"{training_data_name(cfg)}-seed{cfg.seed}"
    train_set, purify_train = generative_training_set(cfg.dataset, cfg.train_dataset, cfg.poison, cfg.seed)
    result = train_ddpm(cfg, train_set, purify_train.images, out)
    write_json_atomic(out / "summary.json", {"model_dir": str(result.model_dir), "mlflow_run_id": result.run_id,
                                             "registered_name": result.registered_name,
                                             "registered_version": result.registered_version,
                                             "resumed_from": result.resumed_from})
    print(f"[genlab] DDPM in {result.model_dir}; runs: {ui_command()}")
    return 0


if __name__ == "__main__":
    run_job(main)
