"""Crafting with a cache: every PoisonSet is crafted once per (dataset hash, attack config, seed).

A crafted attack lives in `<root>/<attack>-<key>/`:

    <attack>-<key>.npz/.json   the whole PoisonSet (targeted: every trial merged), the file a sweep
                               references as `{name: imported, path: ...}`
    trials.json                targeted only: the trials protocol (genlab.attacks.targeted.trials)
    trial-0003.npz/.json       targeted only: one trial's PoisonSet, written atomically when it is done
    provenance.json            dataset hash, attack config, seed, surrogate, code version

Targeted attacks are crafted trial by trial: a rerun after a kill loads the finished trials and
crafts only the rest, so the result equals an uninterrupted run. With Ray connected the trials are
Ray tasks (`genlab.runtime.map_calls`); each set comes back to this process, which saves it. Every file read back is
validated by `load_poison_set_for` (indices, shapes, epsilon budget, dataset hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from genlab.attacks.backdoor.narcissus import NarcissusConfig, PixelTransform
from genlab.attacks.registry import TARGETED_CRAFTERS, AttackConfig, craft_poisons
from genlab.attacks.surrogate import clean_surrogate
from genlab.attacks.targeted.base import runner_up_classes
from genlab.attacks.targeted.trials import (
    TargetedTrial,
    load_trials,
    make_trials,
    merge_targeted,
    mergeable,
    save_trials,
)
from genlab.cache_cap import evict_least_recently_used, mark_used
from genlab.config import StrictModel
from genlab.data import DatasetConfig
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet, load_poison_set_for
from genlab.data.splits import DataSplitConfig
from genlab.errors import ConfigError
from genlab.fileio import path_lock, write_json_atomic
from genlab.runtime import Progress, RaySettings, map_calls, print_progress
from genlab.tracking import git_commit

PROVENANCE = "provenance.json"  # written first into an attack's directory; its mtime is the attack's last use


class CraftPoisonsConfig(StrictModel):
    """One attack crafted against one dataset."""

    experiment: str = "craft-poisons"  # MLflow experiment
    seed: int = 0  # crafting seed (poison rows, trials, optimisation)
    work_dir: str = ".genlab"  # the poison cache lives in <work_dir>/poisons (shared with the defense sweep)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    # craft against the classifier rows of this pool split (the rows a defense sweep with the same `split` crafts
    # against, so it reuses the set); None: the dataset's whole training set
    split: DataSplitConfig | None = None
    attack: AttackConfig  # the attack and its settings (name: badnets | blend | narcissus | gradient_matching | ...)
    parallel: bool = False  # targeted attacks: craft the trials (and train efficacy victims) as Ray tasks, 1 CPU each
    ray: RaySettings = Field(default_factory=RaySettings)  # where those tasks run (parallel only)


@dataclass(frozen=True)
class CraftedPoisons:
    """What `craft_cached` produced: the whole PoisonSet (None for targeted trials that cannot merge) and its files."""

    directory: Path  # the attack's cache directory
    poison: PoisonSet | None  # every trial merged (None: trials of different adversarial classes)
    poison_path: Path | None  # its .npz (reference it as {name: imported, path: ...})
    trial_paths: list[Path]  # targeted: one PoisonSet .npz per trial; backdoors: empty
    trials_path: Path | None  # targeted: the trials protocol file
    crafted_trials: list[int]  # trials crafted by this call (the rest were finished before and reused)
    provenance: dict[str, Any]
    trials: list[TargetedTrial] = field(default_factory=list)  # targeted: the trials protocol; backdoors: empty
    trial_sets: list[PoisonSet] = field(default_factory=list)  # targeted: each trial's PoisonSet (validated or just crafted)


def is_targeted(cfg: Any) -> bool:
    """Return True for attacks crafted per targeted trial (their name is in TARGETED_CRAFTERS)."""
    return cfg.name in TARGETED_CRAFTERS


def cache_key(dataset_hash: str, cfg: Any, seed: int) -> str:
    """Return the 16-hex-digit key of (dataset hash, attack config, seed)."""
    payload = {"dataset": dataset_hash, "attack": cfg.model_dump(mode="json"), "seed": seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def surrogate_description(cfg: Any, dataset_hash: str) -> dict[str, Any] | None:
    """Return the attacker's surrogate model (config, seed, training data, sha256 of these), or None without one.

    Surrogate training is seeded and deterministic, so this description identifies its weights.
    """
    if not hasattr(cfg, "surrogate"):
        return None
    if getattr(cfg, "pretrained", None):
        trained_on = f"pretrained extractor {cfg.pretrained} (the surrogate is not used)"
    elif isinstance(cfg, NarcissusConfig):
        trained_on = f"{cfg.pood} (POOD) + class {cfg.target_class} of dataset {dataset_hash}"
    else:
        trained_on = f"clean training set of dataset {dataset_hash}"
    description = {"model": cfg.surrogate.model_dump(mode="json"), "seed": cfg.surrogate_seed, "trained_on": trained_on}
    return {**description, "hash": hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()}


def craft_cached(cfg: Any, train: ImageSet, test: ImageSet, seed: int, root: str | Path,
                 progress: Progress | None = None, transform: PixelTransform | None = None,
                 max_bytes: int | None = None) -> CraftedPoisons:
    """Return attack `cfg`'s PoisonSet against `train`, crafted into (or read back from) the cache under `root`.

    Targeted attacks craft `cfg.trials` trials from `make_trials` (adversarial class: `adversarial_choice`),
    each saved when done and skipped on a rerun; their sets are merged when they share an
    adversarial class. `progress` gets one line per trial (default: print). `transform` is the
    defender's purifier, for the defense-aware attacks (`craft_poisons`). The attack's directory is
    locked (`path_lock`) while it is crafted or read, and marked used; with `max_bytes` (None: no cap)
    the least recently used other attacks are then evicted until the cache fits (`genlab.cache_cap`).
    """
    key = cache_key(train.hash, cfg, seed)
    directory = Path(root) / f"{cfg.name}-{key}"
    with path_lock(directory):
        crafted = _craft_or_reuse(cfg, train, test, seed, directory, key, progress or print_progress, transform)
        with contextlib.suppress(FileNotFoundError):
            mark_used(directory, PROVENANCE)
    if max_bytes is not None:
        evict_least_recently_used(Path(root), max_bytes, PROVENANCE, keep=[directory])
    return crafted


def _craft_or_reuse(cfg: Any, train: ImageSet, test: ImageSet, seed: int, directory: Path, key: str,
                    progress: Progress, transform: PixelTransform | None) -> CraftedPoisons:
    """Craft attack `cfg` into its cache `directory` (cache key `key`), or read it back from there (`craft_cached`)."""
    poison_path = directory / f"{cfg.name}-{key}.npz"
    provenance = {"attack": cfg.name, "config": cfg.model_dump(mode="json"), "seed": seed, "cache_key": key,
                  "dataset_hash": train.hash, "test_hash": test.hash if is_targeted(cfg) else None,
                  "surrogate": surrogate_description(cfg, train.hash), "git_commit": git_commit()}
    if not is_targeted(cfg):
        crafted = []
        if poison_path.with_suffix(".json").is_file():
            progress(f"{cfg.name}: reusing the crafted set {poison_path}")
            poison = load_poison_set_for(poison_path, train)
        else:
            progress(f"{cfg.name}: crafting into {directory}")
            poison, crafted = craft_poisons(cfg, train, seed, transform), [0]
            write_json_atomic(directory / PROVENANCE, provenance)
            poison.save(poison_path)
        return CraftedPoisons(directory, poison, poison_path, [], None, crafted, provenance)
    return _craft_trials(cfg, train, test, seed, directory, poison_path, provenance, progress)


def _craft_trials(cfg: Any, train: ImageSet, test: ImageSet, seed: int, directory: Path, poison_path: Path,
                  provenance: dict[str, Any], progress: Progress) -> CraftedPoisons:
    """Craft (or reuse) every trial of a targeted attack, then merge them when they share an adversarial class and
    no base row (`mergeable`)."""
    trials_path = directory / "trials.json"
    if trials_path.is_file():
        trials = load_trials(trials_path, train_size=len(train), test_size=len(test))
    else:
        trials = make_trials(train, test, count=cfg.trials, budget=cfg.budget, seed=seed, **adversarial_choice(cfg, train, test))
        write_json_atomic(directory / PROVENANCE, provenance)
        save_trials(trials, trials_path)
    paths = [directory / f"trial-{trial.index:04d}.npz" for trial in trials]
    labels = [f"{cfg.name} trial {t.index + 1}/{len(trials)} (target test row {t.target_index})" for t in trials]
    todo = [i for i, path in enumerate(paths) if not path.with_suffix(".json").is_file()]
    by_trial: dict[int, PoisonSet] = {}
    for i in sorted(set(range(len(trials))) - set(todo)):
        by_trial[i] = load_poison_set_for(paths[i], train)
        progress(f"{labels[i]}: finished before, reused")

    def save(k: int, crafted_trial: tuple[PoisonSet, float]) -> None:
        by_trial[todo[k]] = crafted_trial[0]
        crafted_trial[0].save(paths[todo[k]])
        progress(f"{labels[todo[k]]}: crafted in {crafted_trial[1]:.1f} s")

    map_calls(craft_trial, [(trials[i],) for i in todo], shared=(cfg, train, test, seed, progress), on_done=save)
    crafted = [trials[i].index for i in todo]
    sets = [by_trial[i] for i in range(len(trials))]
    if not mergeable(trials):
        progress(f"{cfg.name}: trials differ in adversarial class or share base rows; kept per trial, not merged")
        return CraftedPoisons(directory, None, None, paths, trials_path, crafted, provenance, trials, sets)
    if crafted or not poison_path.with_suffix(".json").is_file():
        merge_targeted(sets).save(poison_path)
    return CraftedPoisons(directory, load_poison_set_for(poison_path, train), poison_path, paths, trials_path, crafted,
                          provenance, trials, sets)


def craft_trial(cfg: Any, train: ImageSet, test: ImageSet, seed: int, progress: Progress,
                trial: TargetedTrial) -> tuple[PoisonSet, float]:
    """Return one trial's PoisonSet of targeted attack `cfg` and the seconds crafting it took."""
    started = time.perf_counter()
    return TARGETED_CRAFTERS[cfg.name](cfg, train, test, trial, seed, progress), time.perf_counter() - started


def adversarial_choice(cfg: Any, train: ImageSet, test: ImageSet) -> dict[str, Any]:
    """Return make_trials' adversarial keyword: the shared class or None, or every test row's runner-up
    class under the attacker's clean surrogate when `cfg.adversarial_class` is 'runner_up'."""
    if cfg.adversarial_class != "runner_up":
        return {"adversarial_class": cfg.adversarial_class}
    surrogate = clean_surrogate(train, cfg.surrogate, cfg.surrogate_seed)
    return {"runner_up": runner_up_classes(surrogate, test.images, test.labels)}


def require_whole_set(crafted: CraftedPoisons, key: str) -> PoisonSet:
    """Return the crafted whole PoisonSet; ConfigError naming attack `key` when its trials could not merge."""
    if crafted.poison is None:
        raise ConfigError(f"attack {key}: adversarial_class={crafted.provenance['config']['adversarial_class']} gives "
                          f"its trials different adversarial classes, so they cannot merge into one poisoned training "
                          f"set; set adversarial_class to one class (per-trial sets in {crafted.directory})")
    return crafted.poison
