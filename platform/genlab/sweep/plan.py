"""Sweep planning: craft (or load) poisons, purify shared work once, and list the trials.

Clean training images are purified once per purifier setting and shared by every attack;
only each attack's poisoned rows are purified per attack, with the same per-row noise the
clean row would get, and then replace their clean rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genlab.attacks import PoisonSet
from genlab.attacks.crafting import craft_cached, require_whole_set
from genlab.attacks.imported import load_imported
from genlab.data.imageset import ImageSet
from genlab.purify.base import PurifierSettings
from genlab.purify.baselines import NoneSettings
from genlab.purify.cache import PurificationCache
from genlab.purify.puregen import EnergyScorer, PuregenFiltSettings, highest_energy_rows
from genlab.purify.stage import StageInput, purify_parts_cached
from genlab.sweep.config import SweepConfig
from genlab.sweep.provisioning import provide_models, train_missing_models
from genlab.visualize import save_image_grid


@dataclass(frozen=True)
class TrainingSet:
    """One purified, poisoned training set, shared by the trials of every classifier seed."""

    key: str
    attack: str
    settings: PurifierSettings
    steps: int
    images: np.ndarray
    labels: np.ndarray
    purify_images_per_s: float | None
    grid_path: Path
    stage_ran: bool = False  # its purifier setting went through a Ray Data stage in this sweep (not all from the cache)


def trial_name(attack: str, settings: PurifierSettings, steps: int, seed: int) -> str:
    """Return the run name of one trial, e.g. `blend-jpeg-q75-seed0`."""
    return f"{attack}-{settings.label(steps)}-seed{seed}"


def poison_for(cfg: SweepConfig, attack_cfg: Any, train: ImageSet, test: ImageSet, cache_dir: Path) -> PoisonSet:
    """Return the attack's PoisonSet: imported sets are validated; the others come from the crafting cache.

    Crafted sets are cached by (dataset hash, attack config, seed) in `cache_dir`, the cache
    `jobs/craft_poisons.py` fills. A targeted attack's `trials` are crafted (each cached) and
    merged into one multi-target set, so one classifier training measures all its targets.
    """
    if attack_cfg.name == "imported":
        return load_imported(attack_cfg, train, cfg.seed)
    return require_whole_set(craft_cached(attack_cfg, train, test, cfg.seed, cache_dir), attack_cfg.key)


def build_training_sets(cfg: SweepConfig, train: ImageSet, poisons: dict[str, PoisonSet], out_dir: Path) -> list[TrainingSet]:
    """Return every (attack, purifier setting, step count) training set, purifying through Ray Data.

    `puregen-filt` ranks the whole poisoned training set by EBM energy, so its rows are not
    purified batch by batch: the stage runs its `transform` (shared with a plain setting of the
    same transform through the cache), and the highest-energy share of rows takes the result.
    """
    cache = PurificationCache(Path(cfg.work_dir) / "purified")
    row_ids = np.arange(len(train), dtype=np.int64)
    sets = []
    all_settings = [s for entry in cfg.purifiers for s in entry.settings()]
    train_missing_models(all_settings, cfg.model_training, cfg.dataset, train, Path(cfg.work_dir))
    for settings in all_settings:
        settings = provide_models(settings, cfg.model_training, cfg.dataset, train, Path(cfg.work_dir))
        staged = settings.transform if isinstance(settings, PuregenFiltSettings) else settings
        parts = [StageInput(train.images, train.labels, row_ids)]
        parts += [StageInput(poison.images, poison.labels, poison.base_indices) for poison in poisons.values()]
        print(f"[genlab] purifying {len(train)} clean training images and {sum(len(p.row_ids) for p in parts[1:])} "
              f"poisoned rows of {len(poisons)} attacks with {staged.label()}")
        clean, *dirty_parts = purify_parts_cached(parts, staged, cfg.seed, cfg.purification, cache)
        hits = sum(part.from_cache for part in (clean, *dirty_parts))
        stage_ran = not isinstance(staged, NoneSettings) and hits < len(parts)
        if not isinstance(staged, NoneSettings):
            print(f"[genlab] {staged.label()}: {hits}/{len(parts)} parts from the purification cache"
                  + (", the others purified by a Ray Data stage" if stage_ran else ""))
        for (attack, poison), dirty in zip(poisons.items(), dirty_parts):
            rows = poison.base_indices
            labels = train.labels.copy()
            labels[rows] = poison.labels
            raw = train.images.copy()
            raw[rows] = poison.images
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
                sets.append(TrainingSet(key, attack, settings, steps, images, labels, clean.images_per_s, grid,
                                        stage_ran))
    return sets
