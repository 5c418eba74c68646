"""Train a convergent EBM (PureGen-EBM) with persistent Langevin chains; register it in MLflow.

Local (MLflow at sqlite:///mlflow.db in the working directory), a few CPU minutes on digits:
    python jobs/train_ebm.py                                     # conf/train_ebm.yaml
    python jobs/train_ebm.py --out out/ebm-digits iterations=600 model.nf=32
    python jobs/train_ebm.py poison='{name: blend, epsilon: 32}'    # learn from a poisoned training set
    python jobs/train_ebm.py train_dataset='{name: shapes}'          # learn from another dataset
The released code's settings (ResNet EBM, 128 filters, Adam, ~65k iterations; a GPU job), and the
paper's Alg. 2 values as the alternative (SGD 5e-5, 150k iterations):
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/train_ebm.py --config conf/train_ebm_cifar10.yaml --out out/ebm-cifar10
    python jobs/train_ebm.py --config conf/train_ebm_paper.yaml
Killed runs resume from the last checkpoint in --out when started again with the same config;
after a finished run it does nothing. Outputs go to --out (default
out/train_ebm/<registry name>-<config hash>). The final EBM is at <out>/model and registered as
genlab-ebm-<dataset>, with the suffix -from-<train dataset> when it learned from another dataset
and -poisoned-<attack> from a poisoned one; purify with it via the purifier config
`{name: ebm, registered_model: genlab-ebm-digits}`. Then look at the runs:
    mlflow ui --backend-store-uri sqlite:///mlflow.db
Exit codes: 0 done, 1 failed (e.g. diverged, bad checkpoint), 2 bad config.
"""

from genlab.cli import run_job
from genlab.sweep.provisioning import EbmJobConfig, run_training_job


def main() -> int:
    """Train (or resume) the EBM the config and overrides describe (genlab.sweep.provisioning); return 0."""
    return run_training_job(EbmJobConfig, __doc__, default_config="conf/train_ebm.yaml")


if __name__ == "__main__":
    run_job(main)
