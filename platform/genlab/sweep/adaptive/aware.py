"""Defense-aware Narcissus (PureGen App. E.2.1, Table 11): the trigger optimisation sees the defender's purifier.

`aware_transform` turns the purifier into the pixel-unit callable `craft_narcissus` accepts: the
EBM's Langevin chain (or the DDPM's forward jump + reverse chain) with `purifier_steps` steps,
differentiated through (`gradient: full`) or as BPDA (identity backward). Every call draws fresh
purifier noise, so over the optimisation's steps the trigger's gradient is an expectation over the
purifier's randomness (EOT, one draw per step). `craft_aware` crafts it into the poison cache, with
`purifier_checkpoint` set to the model it used (part of the cache key); the defense sweep's crafting
step (`genlab.sweep.training_sets.poison_for`) calls it with the purifiers the sweep provisioned.
`compare_triggers` is the job's report: poison success after purification, plain vs aware.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from genlab.attacks.backdoor.narcissus import NarcissusAwareConfig, PixelTransform
from genlab.attacks.crafting import craft_cached
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.errors import ConfigError
from genlab.purify.ddpm import DdpmSettings
from genlab.purify.ebm import EbmSettings
from genlab.runtime import derive_seed, print_progress, resolve_device
from genlab.sweep.adaptive.eot import bpda
from genlab.sweep.adaptive.transforms import transform_for

AWARE_OF = {"narcissus_ebm_aware": EbmSettings, "narcissus_ddpm_aware": DdpmSettings}  # attack -> purifier it sees


def purifier_setting(cfg: NarcissusAwareConfig, provisioned: list[Any]) -> EbmSettings | DdpmSettings:
    """Return the purifier the attack sees, at `cfg.purifier_steps`: its own checkpoint, else the first
    provisioned setting of its kind (the defender's model). ConfigError when there is none."""
    kind = AWARE_OF[cfg.name]
    if cfg.purifier_checkpoint is not None:
        base = kind(checkpoint=cfg.purifier_checkpoint)
    else:
        base = next((s for s in provisioned if type(s) is kind and s.checkpoint is not None), None)
        if base is None:
            raise ConfigError(f"attack {cfg.name}: no {kind.model_fields['name'].default} purifier with a model to "
                              f"craft through; add one to purifiers or set purifier_checkpoint")
    field = base.snapshot_field
    return base.model_copy(update={field: [cfg.purifier_steps]})


def aware_transform(cfg: NarcissusAwareConfig, settings: EbmSettings | DdpmSettings, seed: int,
                    device: torch.device | str = "cpu") -> PixelTransform:
    """Return the purifier as a callable on float NCHW pixels [0, 255], differentiable as `cfg.gradient` says."""
    transform = transform_for(settings, differentiable=cfg.gradient == "full", seed=derive_seed("aware", seed),
                              device=device)

    def purify_pixels(pixels: torch.Tensor) -> torch.Tensor:
        unit = pixels / 255.0
        return 255.0 * (bpda(transform, unit) if cfg.gradient == "bpda" else transform(unit))

    return purify_pixels


def craft_aware(cfg: NarcissusAwareConfig, provisioned: list[Any], train: ImageSet, test: ImageSet, seed: int,
                cache_dir: Path, *, max_bytes: int | None = None) -> PoisonSet:
    """Return the attack's PoisonSet, its trigger optimised through `purifier_setting(cfg, provisioned)`.

    It is crafted into (or read from) `cache_dir` under `cfg` with `purifier_checkpoint` set to that
    purifier's model (the set's `config` records it), so every caller crafting through the same
    model shares the set. `max_bytes` caps the poison cache (least recently used evicted; `craft_cached`).
    """
    settings = purifier_setting(cfg, provisioned)
    resolved = cfg.model_copy(update={"purifier_checkpoint": settings.checkpoint})
    print_progress(f"{cfg.name}: the trigger sees {settings.label()} of {settings.checkpoint}")
    crafted = craft_cached(resolved, train, test, seed, cache_dir, max_bytes=max_bytes,
                           transform=aware_transform(resolved, settings, seed, resolve_device(settings.device)))
    return crafted.poison


def _mean_and_max(name: str, values: list[float | None]) -> dict[str, float]:
    """Return {name_mean, name_max} of `values`, or {} when any is missing."""
    if not values or any(v is None for v in values):
        return {}
    return {f"{name}_mean": sum(values) / len(values), f"{name}_max": max(values)}


def compare_triggers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return, per (attack, purifier setting), poison success after purification over the target classes:
    mean and max (fractions in [0, 1]), and the mean natural accuracy (Table 11's avg / acc / max).

    Success is the trigger x1 (the papers' number); a Narcissus set scored with an amplified test trigger
    also gets `poison_success_amplified_mean` / `_max` (x3, the attack's own convention)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("poison_success_rate") is not None:
            params = json.dumps(row.get("purifier_params") or {}, sort_keys=True)
            groups.setdefault((row["attack"], row["purifier"], params), []).append(row)
    table = []
    for (attack, purifier, params), members in sorted(groups.items()):
        success = [m["poison_success_rate"] for m in members]
        table.append({"attack": attack, "purifier": purifier, "purifier_params": json.loads(params),
                      "classes": sorted({m["target_class"] for m in members}),
                      "poison_success_mean": sum(success) / len(success), "poison_success_max": max(success),
                      "natural_accuracy_mean": sum(m["natural_accuracy"] for m in members) / len(members),
                      **_mean_and_max("poison_success_amplified",
                                      [m.get("poison_success_rate_amplified") for m in members])})
    return table
