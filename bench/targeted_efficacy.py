"""Efficacy of a targeted attack against victims trained from scratch: poisoned and clean victims side by side.

Crafts (or reuses from the poison cache) every trial, then trains one victim per trial and one
clean victim (`genlab.attacks.targeted.efficacy`): both success rates with Clopper-Pearson intervals and
Fisher's p, and each target's adversarial log-probability shift with the sign test's p.

    python bench/targeted_efficacy.py                      # conf/attacks/gradient_matching.yaml, digits
    python bench/targeted_efficacy.py attack.trials=12 attack.epsilon=76 attack.budget=0.04 \\
        attack.adversarial_class=runner_up attack.steps=100 attack.surrogate.epochs=24 attack.snapshot_epochs=[4,8]

One line per trial, then one JSON object (the last line).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genlab.attacks.crafting import CraftPoisonsConfig
from genlab.attacks.targeted.efficacy import measure_targeted_efficacy
from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.runtime import init_ray


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/attacks/gradient_matching.yaml",
                          extra=lambda p: p.add_argument("--victim-seed", type=int, default=1,
                                                         help="training seed of every victim (the attacker's is attack.surrogate_seed)"))
    cfg = load_config(CraftPoisonsConfig, args.config, args.overrides)
    if cfg.parallel:
        init_ray(cfg.ray)
    train, test = load_dataset(cfg.dataset)
    result = measure_targeted_efficacy(cfg.attack, train, test, seed=cfg.seed, root=Path(cfg.work_dir) / "poisons",
                                       victim_seed=args.victim_seed)
    print(f"[genlab] {result.attack}: poisoned {result.poisoned}; clean {result.clean}; adversarial log-probability "
          f"up on {result.moved_up}/{len(result.log_prob_shifts)} targets, median shift "
          f"{np.median(result.log_prob_shifts):.2f} nats")
    print(json.dumps(result.summary()))
    return 0


if __name__ == "__main__":
    run_job(main)
