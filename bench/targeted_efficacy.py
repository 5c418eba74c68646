"""Efficacy of a targeted attack against victims trained from scratch: poisoned and clean victims side by side.

Each trial's PoisonSet comes from the poison cache, crafted there first if missing (the same
`craft_cached` as jobs/craft_poisons.py, so a second run with other victims crafts nothing). One
victim per trial trains on the training set with that trial's poisons in place; one clean victim
trains once. Victims use the attack's surrogate recipe with another seed (`--victim-seed`): the
attacker knows the architecture and training, not the initialisation.

Reported over the trials: the success rates (target classified as the adversarial class) of the
poisoned and the clean victims with Clopper-Pearson intervals and Fisher's exact p, and the shift
of each target's adversarial log-probability (poisoned minus clean, nats) with the sign test's p,
which tells an attack's effect apart even where few targets flip.

    python bench/targeted_efficacy.py                      # conf/attacks/gradient_matching.yaml, digits
    python bench/targeted_efficacy.py attack.trials=12 attack.epsilon=76 attack.budget=0.04 \\
        attack.adversarial_class=runner_up attack.steps=100 attack.surrogate.epochs=24 attack.snapshot_epochs=[4,8]

One line per trial, then one JSON object (the last line).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from genlab.attacks.crafting import CraftPoisonsConfig, craft_cached, is_targeted, load_validated
from genlab.attacks.targeted_eval import (adversarial_log_probabilities, fisher_pvalue, sign_test_pvalue,
                                          success_rate, targeted_hits)
from genlab.attacks.trials import load_trials
from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.errors import ConfigError
from genlab.train.classifier import predict, train_classifier


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/attacks/gradient_matching.yaml",
                          extra=lambda p: p.add_argument("--victim-seed", type=int, default=1,
                                                         help="training seed of every victim (the attacker's is attack.surrogate_seed)"))
    cfg = load_config(CraftPoisonsConfig, args.config, args.overrides)
    if not is_targeted(cfg.attack):
        raise ConfigError(f"attack.name: {cfg.attack.name} is not a targeted attack")
    train, test = load_dataset(cfg.dataset)
    crafted = craft_cached(cfg.attack, train, test, cfg.seed, Path(cfg.work_dir) / "poisons")
    trials = load_trials(crafted.trials_path, train_size=len(train), test_size=len(test))
    victim, classes = cfg.attack.surrogate, len(train.classes)
    targets = test.images[[t.target_index for t in trials]]
    adversarial = np.array([t.adversarial_class for t in trials])
    clean = train_classifier(train.images, train.labels, classes, victim, seed=args.victim_seed)
    clean_log_probs = adversarial_log_probabilities(clean, targets, adversarial)
    poisoned_log_probs, poisoned_predictions = [], []
    for i, (trial, path) in enumerate(zip(trials, crafted.trial_paths)):
        poison = load_validated(path, train)
        data = train.replace_rows(poison.base_indices, poison.images, poison.labels)
        model = train_classifier(data.images, data.labels, classes, victim, seed=args.victim_seed)
        poisoned_log_probs.append(float(adversarial_log_probabilities(model, targets[[i]], adversarial[[i]])[0]))
        poisoned_predictions.append(int(predict(model, targets[[i]])[0]))
        print(f"[genlab] trial {trial.index}: target row {trial.target_index} {trial.target_label} -> "
              f"{trial.adversarial_class}: log p(adversarial) clean {clean_log_probs[i]:.2f}, poisoned "
              f"{poisoned_log_probs[-1]:.2f}{' (flipped)' if poisoned_predictions[-1] == adversarial[i] else ''}",
              flush=True)
    poisoned = success_rate(targeted_hits(np.array(poisoned_predictions), adversarial))
    without = success_rate(targeted_hits(predict(clean, targets), adversarial))
    shifts = np.array(poisoned_log_probs) - clean_log_probs
    moved_up = int((shifts > 0).sum())
    print(f"[genlab] {cfg.attack.key}: poisoned {poisoned}; clean {without}; adversarial log-probability up on "
          f"{moved_up}/{len(shifts)} targets, median shift {np.median(shifts):.2f} nats")
    print(json.dumps({"attack": cfg.attack.key, "trials": len(trials), "victim_seed": args.victim_seed,
                      "poisoned_success": asdict(poisoned), "clean_success": asdict(without),
                      "fisher_p": fisher_pvalue(poisoned, without), "median_log_prob_shift": float(np.median(shifts)),
                      "targets_moved_up": moved_up, "sign_test_p": sign_test_pvalue(shifts),
                      "log_prob_shifts": [round(float(s), 3) for s in shifts]}))
    return 0


if __name__ == "__main__":
    run_job(main)
