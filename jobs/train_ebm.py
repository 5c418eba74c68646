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

from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.tracking import ui_command
from genlab.train.ebm import EbmTrainConfig, registry_name_of, train_ebm
from genlab.train.generative_common import default_out_dir, generative_training_set


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/train_ebm.yaml")
    cfg = load_config(EbmTrainConfig, args.config, args.overrides)
    ebm_train, purify_train = generative_training_set(cfg.dataset, cfg.train_dataset, cfg.poison, cfg.seed)
    out_dir = args.out or default_out_dir("train_ebm", registry_name_of(cfg), cfg)
    print(f"[genlab] EBM training on {len(ebm_train)} images {ebm_train.shape}; checkpoints in {out_dir}")
    result = train_ebm(cfg, ebm_train, purify_train.images, out_dir)
    print(f"[genlab] EBM saved to {result.model_dir}" +
          (f"; registered {result.registered_name} version {result.registered_version}" if result.registered_version else ""))
    print(f"[genlab] MLflow: {ui_command()}")
    return 0


if __name__ == "__main__":
    run_job(main)
