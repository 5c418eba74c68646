"""Adaptive evaluation: a purified classifier attacked through its purifier (PGD with BPDA + EOT, AutoAttack-rand).

The purifier (EBM Langevin or DDPM, `purifier:`) is an input transform in front of a classifier
trained on the clean training set; torchattacks' PGD / PGD-L2 / AutoAttack(version="rand") attack
the pair through `genlab.sweep.adaptive.eot` (BPDA: identity backward; EOT: logits averaged over
purifier draws). Reported: clean accuracy, robust accuracy per attack and budget, with and without
the purifier, EOT samples and cost; and the sanity checks (robust <= clean, stronger attacks not
weaker, epsilon = 1 breaks it, the undefended classifier no better). A purifier without a model
gets one trained by the sweep's provisioning (once; cached under <work_dir>/models).

    python jobs/adaptive_eval.py                                    # conf/adaptive_eval.yaml (digits, EBM)
    python jobs/adaptive_eval.py --config conf/adaptive_eval_ddpm.yaml
    python jobs/adaptive_eval.py --config conf/adaptive_eval_cifar10.yaml   # ResNet-18, T=150 (GPU)
    python jobs/adaptive_eval.py 'purifier={name: quantize}'       # the planted masking defense: fails the checks
On a Ray cluster: ray job submit --address http://127.0.0.1:8265 --working-dir . -- python jobs/adaptive_eval.py
Exit codes: 0 every sanity check passed, 1 one failed (the last line says which), 2 bad config.
"""

from pathlib import Path

from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.sweep.adaptive import AdaptiveEvalConfig, last_line, run_adaptive_eval
from genlab.sweep.provisioning import provide_models


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/adaptive_eval.yaml")
    cfg = load_config(AdaptiveEvalConfig, args.config, args.overrides)
    train, test = load_dataset(cfg.dataset)
    work_dir = Path(cfg.work_dir).resolve()
    cfg = cfg.model_copy(update={"purifier": provide_models(cfg.purifier, cfg.model_training, cfg.dataset, train,
                                                             work_dir)})
    out_dir = args.out or Path("out/adaptive_eval")
    summary = run_adaptive_eval(cfg, train, test, out_dir)
    print(f"[genlab] summary: {out_dir / 'summary.json'}")
    print(last_line(summary))
    return 0 if summary["all_passed"] else 1


if __name__ == "__main__":
    run_job(main)
