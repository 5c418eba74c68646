"""Steps 1-3 of the defense sweep: the purified, poisoned training sets its trials train on.

1. `provision_models`: every purifier setting the config expands to, each model it uses given a
   local checkpoint (a registered model downloaded, a missing one trained once and cached).
2. `craft_poison_sets`: each attack variant's PoisonSet, from the crafting cache (or imported): a
   targeted attack's trials apart (one victim each), a backdoor once per `target_classes` entry.
   The defense-aware attacks (`narcissus_ebm_aware`, `narcissus_ddpm_aware`) are crafted through
   the purifiers step 1 provisioned, the others before step 1 (the `poisoned` ablation's
   generative models learn from them).
3. `purify_training_sets`: clean training images are purified once per purifier setting and
   shared by every attack; only each attack's poisoned rows are purified per attack, with the
   same per-row noise the clean row would get, and then replace their clean rows. Each set goes
   to Ray's object store as soon as it is made (`genlab.sweep.set_store`): the driver holds refs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray

from genlab.attacks.backdoor.base import BackdoorAttackConfig
from genlab.attacks.backdoor.narcissus import NarcissusAwareConfig
from genlab.attacks.crafting import craft_cached, is_targeted, require_whole_set
from genlab.attacks.imported import load_imported
from genlab.cache_cap import gigabytes_to_bytes
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.purify.base import PurifierSettings
from genlab.purify.baselines import NoneSettings
from genlab.purify.cache import PurificationCache, PurifiedImages
from genlab.purify.puregen import EnergyScorer, PuregenFiltSettings, highest_energy_rows
from genlab.purify.stage import StageInput, purify_parts_cached
from genlab.runtime import one_torch_thread
from genlab.sweep.adaptive.aware import craft_aware
from genlab.sweep.config import SweepConfig
from genlab.sweep.provisioning import cap_model_caches, models_training_meanwhile, provide_models, train_missing_models
from genlab.sweep.set_store import store_training_set
from genlab.tracking import TrackedRun
from genlab.visualize import save_image_grid


@dataclass(frozen=True)
class TrainingSet:
    """One purified, poisoned training set, shared by the trials of every classifier seed."""

    key: str
    attack: str
    settings: PurifierSettings
    steps: int
    data: ray.ObjectRef  # (images, labels) in Ray's object store (genlab.sweep.set_store)
    purify_images_per_s: float | None
    grid_path: Path
    purify_speed: dict[str, str]  # how the purifier ran its networks (`Purifier.speed_params`); {} without one
    stage_ran: bool = False  # its purifier setting went through a Ray Data stage in this sweep (not all from the cache)


def trial_name(attack: str, settings: PurifierSettings, steps: int, seed: int) -> str:
    """Return the run name of one trial, e.g. `blend-jpeg-q75-seed0`."""
    return f"{attack}-{settings.label(steps)}-seed{seed}"


def cfg_settings(cfg: SweepConfig) -> list[PurifierSettings]:
    """Return every concrete purifier setting `cfg.purifiers` expands to, as configured (no model provided yet)."""
    return [s for entry in cfg.purifiers for s in entry.settings()]


def provision_models(cfg: SweepConfig, train: ImageSet) -> list[PurifierSettings]:
    """Return every concrete purifier setting of `cfg.purifiers`, each model it uses with a local checkpoint.

    Models no setting names come from `<work_dir>/models`, where `train_sweep_models` or
    `sweep_models_training_meanwhile` trained them on `train` (the generative training rows) with
    `cfg.model_training`, once; a single missing kind is trained here. With `cfg.model_cache_max_gb` the model
    caches are then trimmed to it, keeping these models (`cap_model_caches`).
    """
    all_settings = cfg_settings(cfg)
    provided = [provide_models(s, cfg.model_training, cfg.dataset, train, Path(cfg.work_dir)) for s in all_settings]
    if cfg.model_cache_max_gb is not None:
        cap_model_caches(provided, Path(cfg.work_dir), gigabytes_to_bytes(cfg.model_cache_max_gb))
    return provided


def train_sweep_models(cfg: SweepConfig, train: ImageSet) -> None:
    """Train the models `provision_models` would lack on `train`, several kinds at once as Ray tasks, and wait."""
    train_missing_models(cfg_settings(cfg), cfg.model_training, cfg.dataset, train, Path(cfg.work_dir))


def sweep_models_training_meanwhile(cfg: SweepConfig, train: ImageSet) -> contextlib.AbstractContextManager[None]:
    """Return a context in which the models `provision_models` would train on `train` train in Ray tasks
    (`genlab.sweep.provisioning.models_training_meanwhile`), so the driver can craft meanwhile."""
    return models_training_meanwhile(cfg_settings(cfg), cfg.model_training, cfg.dataset, train, Path(cfg.work_dir))


def poison_for(cfg: SweepConfig, attack_cfg: Any, provisioned: list[PurifierSettings], train: ImageSet,
               test: ImageSet, cache_dir: Path) -> PoisonSet:
    """Return the attack's PoisonSet: imported sets are validated; the others come from the crafting cache.

    Crafted sets are cached by (dataset hash, attack config, seed) in `cache_dir`, the cache
    `jobs/craft_poisons.py` fills. A targeted attack's `trials` are crafted (each cached) and
    merged into one multi-target set (the sweep keeps them apart: `craft_poison_sets`). A
    defense-aware attack is crafted through its `purifier_checkpoint`, else the first `provisioned`
    setting of its kind (`genlab.sweep.adaptive.aware.craft_aware`; ConfigError when there is none),
    and cached under its config with that checkpoint set, so `jobs/aware_poisons.py` and any sweep
    with the same purifier model share the set.
    """
    if attack_cfg.name == "imported":
        return load_imported(attack_cfg, train, cfg.seed, test)
    cap = gigabytes_to_bytes(cfg.poison_cache_max_gb)
    if is_defense_aware(attack_cfg):
        return craft_aware(attack_cfg, provisioned, train, test, cfg.seed, cache_dir, max_bytes=cap)
    crafted = craft_cached(attack_cfg, train, test, cfg.seed, cache_dir, max_bytes=cap)
    return require_whole_set(crafted, attack_cfg.key)


def variant_configs(cfg: SweepConfig, attack: Any) -> dict[str, Any]:
    """Return {poison key: attack config} of one attack's variants, each its own poisoned training set and victim.

    A targeted attack: one per trial (`<attack>-trial<k>`: one target image, its poisons, one
    classifier, the papers' protocol). A backdoor with `cfg.target_classes`: one per target class
    (`<attack>-class<c>`, its `target_class` set to c). Any other attack: itself, under its key.
    """
    if is_targeted(attack):
        return {f"{attack.key}-trial{k}": attack for k in range(attack.trials)}
    if cfg.target_classes is not None and isinstance(attack, BackdoorAttackConfig):
        return {f"{attack.key}-class{c}": attack.model_copy(update={"target_class": c}) for c in cfg.target_classes}
    return {attack.key: attack}


def attack_variants(cfg: SweepConfig) -> dict[str, str]:
    """Return {poison key: attack key} for every variant of every attack of `cfg` (`variant_configs`)."""
    return {key: attack.key for attack in cfg.attacks for key in variant_configs(cfg, attack)}


def is_defense_aware(attack: Any) -> bool:
    """Return whether `attack` is crafted through one of the sweep's purifiers (so only after provisioning)."""
    return isinstance(attack, NarcissusAwareConfig)


def craft_poison_sets(cfg: SweepConfig, provisioned: list[PurifierSettings], train: ImageSet, test: ImageSet,
                      run: TrackedRun, *, attacks: list[Any] | None = None) -> dict[str, PoisonSet]:
    """Return {poison key: PoisonSet} for every variant of `attacks` (None: all of `cfg.attacks`); log each one's
    metadata to `run` (`poisons/`).

    A targeted attack's trials are crafted (each cached) and kept apart, one PoisonSet per trial.
    `provisioned`: the sweep's purifier settings with local checkpoints (`provision_models`), which
    the defense-aware attacks are crafted through (`[]` before provisioning, when `attacks` holds none).
    The driver crafts with one torch thread, so the poisons, and every number after them, are the same
    on any number of cores (the generative models train on the other cores meanwhile).
    """
    cache_dir = Path(cfg.work_dir) / "poisons"
    poisons: dict[str, PoisonSet] = {}
    for attack in cfg.attacks if attacks is None else attacks:
        variants = variant_configs(cfg, attack)
        with one_torch_thread():
            if is_targeted(attack):
                crafted = craft_cached(attack, train, test, cfg.seed, cache_dir,
                                       max_bytes=gigabytes_to_bytes(cfg.poison_cache_max_gb))
                poisons.update(zip(variants, crafted.trial_sets))
            else:
                poisons.update({key: poison_for(cfg, variant, provisioned, train, test, cache_dir)
                                for key, variant in variants.items()})
    for name, poison in poisons.items():
        run.client.log_dict(run.run_id, poison.metadata(), f"poisons/{name}.json")
    return poisons


def purify_training_sets(cfg: SweepConfig, all_settings: list[PurifierSettings], train: ImageSet,
                         poisons: dict[str, PoisonSet], out_dir: Path) -> list[TrainingSet]:
    """Return every (attack, purifier setting, step count) training set, purifying through Ray Data.

    Each set's sample grid (clean, poisoned, purified rows) is saved under `out_dir/grids`.
    """
    cache = PurificationCache(Path(cfg.work_dir) / "purified", max_bytes=gigabytes_to_bytes(cfg.purified_cache_max_gb))
    parts = [StageInput(train.images, train.labels, np.arange(len(train), dtype=np.int64))]
    parts += [StageInput(poison.images, poison.labels, poison.base_indices) for poison in poisons.values()]
    sets = []
    for settings in all_settings:
        (clean, *dirty_parts), stage_ran = _purify_parts(cfg, settings, parts, cache)
        for (attack, poison), dirty in zip(poisons.items(), dirty_parts):
            sets += _poisoned_sets(attack, poison, settings, train, clean, dirty, stage_ran, out_dir)
    return sets


def purification_counts(sets: list[TrainingSet]) -> dict[str, int]:
    """Return how many purifier settings ran a Ray Data stage in this sweep (`purification_stage_runs`) and how
    many came whole from the purification cache (`purification_settings_from_cache`)."""
    purified = {s.settings.model_dump_json(): s.stage_ran for s in sets if s.settings.name != "none"}
    return {"purification_stage_runs": sum(purified.values()),
            "purification_settings_from_cache": len(purified) - sum(purified.values())}


def _purify_parts(cfg: SweepConfig, settings: PurifierSettings, parts: list[StageInput],
                  cache: PurificationCache) -> tuple[list[PurifiedImages], bool]:
    """Return (each part purified with `settings`, whether a Ray Data stage ran: not every part came from the cache).

    `puregen-filt` ranks the whole poisoned training set by EBM energy, so its rows are not
    purified batch by batch: the stage runs its `transform` (shared with a plain setting of the
    same transform through the cache), and `_poisoned_sets` lets the highest-energy share of rows
    take the result.
    """
    staged = settings.transform if isinstance(settings, PuregenFiltSettings) else settings
    print(f"[genlab] purifying {len(parts[0].row_ids)} clean training images and "
          f"{sum(len(p.row_ids) for p in parts[1:])} poisoned rows of {len(parts) - 1} attacks with {staged.label()}")
    purified = purify_parts_cached(parts, staged, cfg.seed, cfg.purification, cache)
    hits = sum(part.from_cache for part in purified)
    stage_ran = not isinstance(staged, NoneSettings) and hits < len(parts)
    if not isinstance(staged, NoneSettings):
        print(f"[genlab] {staged.label()}: {hits}/{len(parts)} parts from the purification cache"
              + (", the others purified by a Ray Data stage" if stage_ran else ""))
    return purified, stage_ran


def _poisoned_sets(attack: str, poison: PoisonSet, settings: PurifierSettings, train: ImageSet,
                   clean: PurifiedImages, dirty: PurifiedImages, stage_ran: bool, out_dir: Path) -> list[TrainingSet]:
    """Return the attack's training set at every step count of `settings`: the purified clean rows with its
    purified poisoned rows in their places (puregen-filt: only the highest-energy rows purified)."""
    rows = poison.base_indices
    labels = train.labels.copy()
    labels[rows] = poison.labels
    raw = train.images.copy()
    raw[rows] = poison.images
    sets = []
    for steps in settings.snapshot_steps():
        images = clean.by_steps[steps].copy()
        images[rows] = dirty.by_steps[steps]
        if isinstance(settings, PuregenFiltSettings):
            energies = EnergyScorer(settings.energy_model).scores(raw)
            chosen = highest_energy_rows(energies, settings.filter_fraction)
            images = np.where(chosen[:, None, None, None], images, raw)
        key = f"{attack}-{settings.label(steps)}"
        shown = rows[:8]
        grid = save_image_grid([train.images[shown], poison.images[:8], images[shown]],
                               ["clean", "poisoned", settings.label(steps)], out_dir / "grids" / f"{key}.png")
        sets.append(TrainingSet(key, attack, settings, steps, store_training_set(images, labels), clean.images_per_s,
                                grid, clean.speed, stage_ran))
    return sets
