"""Efficacy of a targeted attack against undefended victims: poisoned and clean victims side by side.

Each trial's PoisonSet comes from the poison cache (`craft_cached`, crafted there first if missing,
so a rerun with other victims crafts nothing). One victim per trial trains on the training set
with that trial's poisons in place; one clean victim trains once. With Ray connected, crafting and
victims fan out as Ray tasks (`genlab.runtime.map_calls`). By default victims use the
attack's surrogate recipe with another seed: the attacker knows the architecture and training,
not the initialisation.

Reported over the trials: the success rates (target classified as the adversarial class) of the
poisoned and the clean victims with Clopper-Pearson intervals and Fisher's exact p, and the shift
of each target's adversarial log-probability (poisoned minus clean, nats) with the sign test's p,
which tells an attack's effect apart even where few targets flip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genlab.attacks.crafting import craft_cached, is_targeted
from genlab.attacks.targeted.targeted_eval import (
    SuccessRate,
    adversarial_log_probabilities,
    fisher_pvalue,
    sign_test_pvalue,
    success_rate,
    targeted_hits,
)
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.errors import ConfigError
from genlab.runtime import Progress, map_calls, print_progress
from genlab.train.classifier import ClassifierConfig, predict, train_classifier


@dataclass(frozen=True)
class TargetedEfficacy:
    """Poisoned against clean victims over an attack's trials (rates in [0, 1], log-probabilities in nats)."""

    attack: str
    victim_seed: int
    poisoned: SuccessRate  # targets a victim trained with their trial's poisons puts in the adversarial class
    clean: SuccessRate  # the same targets under the victim trained on the clean set
    fisher_p: float  # two-sided Fisher exact p that the two rates are equal
    log_prob_shifts: np.ndarray  # float64 [trials]: adversarial log-probability, poisoned minus clean
    sign_test_p: float  # two-sided sign test p that shifts up and down are equally likely

    @property
    def moved_up(self) -> int:
        """Return how many targets' adversarial log-probability rose under their poisoned victim."""
        return int((self.log_prob_shifts > 0).sum())

    def summary(self) -> dict[str, Any]:
        """Return the result as a JSON-ready dict (rates, p-values, median and per-target shifts)."""
        return {"attack": self.attack, "trials": self.poisoned.trials, "victim_seed": self.victim_seed,
                "poisoned_success": asdict(self.poisoned), "clean_success": asdict(self.clean),
                "fisher_p": self.fisher_p, "median_log_prob_shift": float(np.median(self.log_prob_shifts)),
                "targets_moved_up": self.moved_up, "sign_test_p": self.sign_test_p,
                "log_prob_shifts": [round(float(s), 3) for s in self.log_prob_shifts]}


def measure_targeted_efficacy(attack: Any, train: ImageSet, test: ImageSet, *, seed: int, root: str | Path,
                              victim: ClassifierConfig | None = None, victim_seed: int = 1,
                              progress: Progress | None = None) -> TargetedEfficacy:
    """Craft (or reuse from the cache under `root`) every trial of the targeted `attack` with crafting `seed`,
    train one victim per trial and one clean victim (`victim`, default the attack's surrogate recipe, seeded
    `victim_seed`), and return both success rates and the per-target log-probability shifts.

    Raises ConfigError naming attack.name if the attack is not targeted. `progress` gets one line per
    crafted trial and per victim (default: print).
    """
    if not is_targeted(attack):
        raise ConfigError(f"attack.name: {attack.name} is not a targeted attack")
    progress = progress or print_progress
    crafted = craft_cached(attack, train, test, seed, root, progress)
    trials = crafted.trials
    targets = test.images[[t.target_index for t in trials]]
    adversarial = np.array([t.adversarial_class for t in trials])
    outcomes = map_calls(victim_outcome, [(None,), *[(poison,) for poison in crafted.trial_sets]],
                         shared=(train, victim or attack.surrogate, victim_seed, targets, adversarial),
                         on_done=lambda k, _: progress(f"victim {k}/{len(trials)} trained" if k else "clean victim trained"))
    clean_log_probs, clean_predictions = outcomes[0]
    # poisoned victim i is scored on its own target, row i
    poisoned_log_probs = np.stack([log_probs for log_probs, _ in outcomes[1:]]).diagonal()
    poisoned_predictions = np.stack([predictions for _, predictions in outcomes[1:]]).diagonal()
    for i, trial in enumerate(trials):
        flipped = " (flipped)" if poisoned_predictions[i] == adversarial[i] else ""
        progress(f"trial {trial.index}: target row {trial.target_index} {trial.target_label} -> "
                 f"{trial.adversarial_class}: log p(adversarial) clean {clean_log_probs[i]:.2f}, poisoned "
                 f"{poisoned_log_probs[i]:.2f}{flipped}")
    poisoned = success_rate(targeted_hits(poisoned_predictions, adversarial))
    without = success_rate(targeted_hits(clean_predictions, adversarial))
    shifts = poisoned_log_probs - clean_log_probs
    return TargetedEfficacy(attack=attack.key, victim_seed=victim_seed, poisoned=poisoned, clean=without,
                            fisher_p=fisher_pvalue(poisoned, without), log_prob_shifts=shifts,
                            sign_test_p=sign_test_pvalue(shifts))


def victim_outcome(train: ImageSet, victim: ClassifierConfig, victim_seed: int, targets: np.ndarray,
                   adversarial: np.ndarray, poison: PoisonSet | None) -> tuple[np.ndarray, np.ndarray]:
    """Train a victim on `train` with `poison` in place (None: clean); return its adversarial
    log-probabilities (float64 [n], nats) and predicted labels (int64 [n]) on the uint8 `targets`."""
    if poison is not None:
        train = train.replace_rows(poison.base_indices, poison.images, poison.labels)
    model = train_classifier(train.images, train.labels, len(train.classes), victim, seed=victim_seed)
    return adversarial_log_probabilities(model, targets, adversarial), predict(model, targets)
