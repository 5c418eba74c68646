"""The training sets of the sweep's defense trials (`defenses:`): each attack's raw poisoned set.

FrieNDs, EPIC, activation clustering and spectral signatures work inside the trial
(genlab.train.defenses.train_defended), so their trials train on the undefended set: the `none`
purifier's set when the sweep has one, else one built here the same way. The arrays are
shared, not copied: one set per (attack, defense setting) names the same object-store entry. A defense's
settings stand in the set's `settings` (they answer `name`, `params`, `label` and
`snapshot_steps` as purifier settings do), so search modes, trial names and the report take
defense trials as they take purifier trials.
"""

from __future__ import annotations

from pathlib import Path

from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.purify.baselines import NoneSettings
from genlab.sweep.config import SweepConfig
from genlab.sweep.training_sets import TrainingSet, purify_training_sets
from genlab.train.defenses import DefenseSettings


def defense_training_sets(cfg: SweepConfig, sets: list[TrainingSet], train: ImageSet, poisons: dict[str, PoisonSet],
                          out_dir: Path) -> list[TrainingSet]:
    """Return one TrainingSet per (attack, defense setting) of `cfg.defenses`, on the attack's raw poisoned rows."""
    if not cfg.defenses:
        return []
    raw = {s.attack: s for s in sets if isinstance(s.settings, NoneSettings)}
    missing = {attack: poison for attack, poison in poisons.items() if attack not in raw}
    if missing:
        raw.update({s.attack: s for s in purify_training_sets(cfg, [NoneSettings()], train, missing, out_dir)})
    return [TrainingSet(f"{attack}-{defense.label()}", attack, defense, 0, base.data, None, base.grid_path, {})
            for attack, base in raw.items() for defense in cfg.defenses]


def is_defense(settings: object) -> bool:
    """Return whether a training set's settings are a defense's (trained by genlab.train.defenses), not a purifier's."""
    return isinstance(settings, DefenseSettings)
