"""How the sweep's trials are chosen (`tune.search`): grid (default), Optuna or ASHA.

- `grid`: one trial per planned (attack, purifier setting, classifier seed), a `tune.grid_search`.
- `asha`: the same grid, and an ASHAScheduler over classifier epochs (`epoch`, up to
  `classifier.epochs`) that stops, at each rung, the trials trailing on `tune.asha.metric`.
  A stopped trial ends FINISHED with the `stopped_early` flag (MLflow tag, summary column).
- `optuna`: one multi-objective Optuna study per attack (Ray Tune's OptunaSearch,
  metric ["poison_success_rate", "natural_accuracy"], mode ["min", "max"], seeded TPE sampler),
  `tune.optuna.num_samples` trials each; attacks take turns. A study per attack because poison
  success is only comparable within an attack. The sampling space is a categorical over the
  attack's PLANNED purifier settings: the values listed in each purifier's sweepable knobs
  (jpeg `quality`, noise `sigma`, EBM `langevin_steps`, DDPM `diffusion_start_steps` ...; write a
  range as the list of its values) are all purified before the trials, so each setting is still
  purified once and shared by every trial (one Langevin chain yields every step count), and a
  trial costs only its classifier training. A setting Optuna proposes again is trained with its
  next classifier seed: the seeds of `seeds` first, then further ones (max(seeds) + 1, + 2 ...),
  so repeated proposals add the repeats the report's confidence intervals use.

Every mode keeps one trial per (attack, setting, seed) name, so resume and MLflow work unchanged.
"""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from genlab.sweep.config import SweepConfig
from genlab.sweep.training_sets import TrainingSet, trial_name

OBJECTIVES = ("poison_success_rate", "natural_accuracy")  # Optuna's objectives...
DIRECTIONS = ("min", "max")  # ...and their directions
MODES = {"natural_accuracy": "max", "poison_success_rate": "min"}


def trial_spec(training_set: TrainingSet, seed: int) -> dict[str, Any]:
    """Return the JSON-like spec of one trial (what the trainable and the MLflow callback read)."""
    s = training_set
    return {"name": trial_name(s.attack, s.settings, s.steps, seed), "data_key": s.key, "attack": s.attack,
            "purifier": s.settings.name, "purifier_params": s.settings.params(s.steps), "seed": seed,
            "purify_images_per_s": s.purify_images_per_s, "purify_speed": s.purify_speed}


def grid_specs(sets: list[TrainingSet], seeds: list[int]) -> list[dict[str, Any]]:
    """Return the grid's trial specs: every training set with every classifier seed."""
    return [trial_spec(s, seed) for s in sets for seed in seeds]


@dataclass(frozen=True)
class SearchPlan:
    """What `tune.Tuner` gets for one search mode."""

    param_space: dict[str, Any]
    tune_config: tune.TuneConfig


def search_plan(cfg: SweepConfig, sets: list[TrainingSet]) -> SearchPlan:
    """Return the Tuner's param space and TuneConfig for `cfg.tune.search` over the planned training sets."""
    common = {"max_concurrent_trials": cfg.tune.max_concurrent_trials, "reuse_actors": True}  # no torch import per trial
    if cfg.tune.search == "optuna":
        searcher = PerAttackSearch({attack: _optuna_study(cfg, [s for s in sets if s.attack == attack])
                                    for attack in dict.fromkeys(s.attack for s in sets)})
        return SearchPlan({}, tune.TuneConfig(search_alg=searcher, num_samples=cfg.tune.optuna.num_samples
                                              * len(searcher.studies), **common))
    space = {"spec": tune.grid_search(grid_specs(sets, cfg.seeds))}
    if cfg.tune.search == "asha":
        asha = cfg.tune.asha
        scheduler = ASHAScheduler(time_attr="epoch", metric=asha.metric, mode=MODES[asha.metric],
                                  max_t=cfg.classifier.epochs, grace_period=asha.grace_period,
                                  reduction_factor=asha.reduction_factor)
        return SearchPlan(space, tune.TuneConfig(scheduler=scheduler, **common))
    return SearchPlan(space, tune.TuneConfig(**common))


def _optuna_study(cfg: SweepConfig, sets: list[TrainingSet]) -> OptunaSearch:
    sampler = optuna.samplers.TPESampler(seed=cfg.tune.optuna.seed, n_startup_trials=cfg.tune.optuna.startup_trials)
    return OptunaSearch(space=SettingChooser(sets, cfg.seeds), metric=list(OBJECTIVES), mode=list(DIRECTIONS),
                        sampler=sampler)


class SettingChooser:
    """Optuna define-by-run space of one attack: a categorical over its training sets, then the next seed.

    Returns `{"spec": trial spec}`; Optuna records the choice as the parameter `setting` (the data key).
    """

    def __init__(self, sets: list[TrainingSet], seeds: list[int]) -> None:
        # Specs with a placeholder seed: keeps the arrays out of the pickled searcher state.
        self.specs = {s.key: (trial_spec(s, 0), s.attack, s.settings, s.steps) for s in sets}
        self.seeds = list(seeds)
        self.picks: Counter[str] = Counter()

    def next_seed(self, key: str) -> int:
        """Return the classifier seed of the next trial of `key`: `seeds` in order, then max(seeds) + 1, + 2 ..."""
        n = self.picks[key]
        return self.seeds[n] if n < len(self.seeds) else max(self.seeds) + 1 + n - len(self.seeds)

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        key = trial.suggest_categorical("setting", sorted(self.specs))
        spec, attack, settings, steps = self.specs[key]
        seed = self.next_seed(key)
        self.picks[key] += 1
        return {"spec": {**spec, "seed": seed, "name": trial_name(attack, settings, steps, seed)}}


class PerAttackSearch(Searcher):
    """One Tune searcher over several OptunaSearch studies (one per attack): trial k goes to study k mod n."""

    def __init__(self, studies: dict[str, OptunaSearch]) -> None:
        super().__init__(metric=list(OBJECTIVES), mode=list(DIRECTIONS))
        self.studies = studies
        self.suggested = 0
        self.study_of: dict[str, str] = {}  # Tune trial id -> attack

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        attack = list(self.studies)[self.suggested % len(self.studies)]
        config = self.studies[attack].suggest(trial_id)
        self.suggested += 1
        self.study_of[trial_id] = attack
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.studies[self.study_of[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.studies[self.study_of[trial_id]].on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        # Tune's own experiment state (OptunaSearch saves itself the same way), read back only by Tuner.restore.
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__dict__, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.__dict__.update(pickle.load(handle))
