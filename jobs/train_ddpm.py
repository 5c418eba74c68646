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
Rerunning the same command (same config, same --out) after a kill resumes from the last
checkpoint; after a finished run it does nothing. Outputs go to --out (default
out/train_ddpm/<registry name>-<config hash>); the final UNet is <out>/model and registered as
genlab-ddpm-<dataset> (suffix -poisoned-<attack>); purify with it via the purifier config
`{name: ddpm, registered_model: genlab-ddpm-digits}`. Then look at the runs:
    mlflow ui --backend-store-uri sqlite:///mlflow.db
Exit codes: 0 done, 1 training failed (diverged, bad checkpoint), 2 bad config.
"""

from genlab.cli import run_job
from genlab.sweep.provisioning import DdpmJobConfig, run_training_job


def main() -> int:
    """Train (or resume) the DDPM the config and overrides describe (genlab.sweep.provisioning); return 0."""
    return run_training_job(DdpmJobConfig, __doc__, default_config="conf/train_ddpm.yaml")


if __name__ == "__main__":
    run_job(main)
