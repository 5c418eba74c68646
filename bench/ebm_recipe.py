"""Does the small EBM recipe (conf/train_ebm.yaml) defeat blend and Narcissus for every training seed?

On the default sweep's data, split as the sweep splits it (genlab.data.splits: the EBM learns
from the generative rows only), for each EBM training seed: train the EBM (MLflow run
`ebm-recipe-seed<s>`: energy of data vs chain samples every `log_every` iterations, chain-sample
and purified-image grids), purify the classifier's training rows with Psi_T (T = the sweep's
first EBM step count), train the sweep's classifier (seed 0) on the purified blend- and
Narcissus-poisoned sets, and score them against the undefended classifier. Narcissus is scored
with its trigger x1 (the papers' number; x3 printed beside it).

Prints ONE JSON line: per seed, for blend and narcissus and per step count T, success before / after
and the accuracy loss (points); per seed, `why` (genlab.purify.diagnostics, also logged as `trigger.*`
metrics of the seed's MLflow run): the share of each trigger Psi_T leaves along its own direction, the
EBM's energy gap of triggered over clean images and the share of the trigger one drift step takes
back; `all_seeds_halve` (at the first T: every seed halves both attacks' success with at most 3
points of accuracy lost) and `all_seeds_halve_by_T`.

    python bench/ebm_recipe.py [--seeds 0 1 2] [--steps 150 200] [--work .genlab/bench_ebm_recipe] [key=value EBM overrides]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.tracking import MlflowClient

from genlab.config import load_config
from genlab.data import load_dataset
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.data.splits import split_pool
from genlab.purify.diagnostics import drift_along_trigger, energy_gap_sd, trigger_kept
from genlab.purify.ebm import EbmPurifier, EbmSettings
from genlab.purify.puregen import EnergyModelSettings, EnergyScorer
from genlab.sweep.config import SweepConfig
from genlab.sweep.provisioning import EbmJobConfig
from genlab.sweep.training_sets import poison_for
from genlab.tracking import log_metric_batch, numeric_metrics, run_exists, tracking_uri
from genlab.train.classifier import train_classifier
from genlab.train.ebm import train_ebm
from genlab.train.evaluation import natural_accuracy, poison_success_rate

ATTACKS = ("blend", "narcissus")
PROBE_IMAGES = 200  # non-target test images the trigger diagnostics are measured on


def outcome(cfg: SweepConfig, images: np.ndarray, labels: np.ndarray, test: ImageSet,
            poison: PoisonSet) -> dict[str, float]:
    """Return natural accuracy and poison success (x1; `success_x3` for an amplified trigger), fractions 0..1,
    of the sweep's classifier (seed 0) trained on `images`/`labels`."""
    model = train_classifier(images, labels, len(test.classes), cfg.classifier, seed=0)
    scores = {"accuracy": natural_accuracy(model, test), "success": poison_success_rate(model, test, poison, 1.0)}
    if poison.test_magnitude != 1.0:
        scores["success_x3"] = poison_success_rate(model, test, poison)
    return scores


def poisoned(train: ImageSet, poison: PoisonSet) -> ImageSet:
    """Return `train` with the poison's rows in place."""
    return train.replace_rows(poison.base_indices, poison.images, poison.labels)


def main() -> None:
    """Run the benchmark; print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path(".genlab/bench_ebm_recipe"))
    parser.add_argument("--ebm-config", default="conf/train_ebm.yaml")
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="Langevin step counts T to purify with (default: the sweep's EBM step counts); "
                             "all_seeds_halve is judged at the first")
    parser.add_argument("--purifier", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of the sweep's EBM purifier setting, e.g. step_size=0.01 temperature=5e-5")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the EBM training config")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sweep = load_config(SweepConfig, "conf/defense_sweep.yaml")
    split = split_pool(*load_dataset(sweep.dataset), sweep.data_split())
    train, test = split.classifier, split.test
    attacks = {a.name: a for a in sweep.attacks if a.name in ATTACKS}
    target = (sweep.target_classes or [0])[0]
    poisons = {name: poison_for(sweep, a.model_copy(update={"target_class": target}), [], train, test,
                                args.work / "poisons") for name, a in attacks.items()}
    setting = next(p for p in sweep.purifiers if p.name == "ebm")
    steps = args.steps or list(setting.langevin_steps)
    purify = {"step_size": setting.step_size, "temperature": setting.temperature,
              **{key: float(value) for key, value in (item.split("=", 1) for item in args.purifier)}}
    before = {name: outcome(sweep, *_arrays(poisoned(train, p)), test, p) for name, p in poisons.items()}
    result: dict[str, Any] = {"T": steps, "purifier": purify, "generative_rows": len(split.generative), "classifier_rows": len(train),
                              "target_class": target, "undefended": before, "seeds": {}}
    for seed in args.seeds:
        ebm_cfg = load_config(EbmJobConfig, args.ebm_config, [*args.overrides, f"seed={seed}", "register_model=false"])
        key = hashlib.sha256(ebm_cfg.model_dump_json().encode()).hexdigest()[:12]
        trained = train_ebm(ebm_cfg, split.generative, train.images, args.work / f"ebm-{key}",
                            run_name=f"ebm-recipe-seed{seed}", registered_name="genlab-ebm-recipe")
        purifier = EbmPurifier(EbmSettings(checkpoint=str(trained.model_dir), langevin_steps=steps, device="cpu",
                                           **purify), 0)
        clean = purifier.purify(train.images, np.arange(len(train)))
        purified = {name: purifier.purify(p.images, p.base_indices) for name, p in poisons.items()}
        per_attack = {name: {} for name in poisons}
        for t in steps:
            for name, poison in poisons.items():
                images = clean[t].copy()
                images[poison.base_indices] = purified[name][t]
                after = outcome(sweep, images, poisoned(train, poison).labels, test, poison)
                per_attack[name][t] = _scores(before[name], after)
        diagnostics = why(purifier, trained.model_dir, test, poisons, target)
        client = MlflowClient(tracking_uri())
        if run_exists(client, trained.run_id):
            log_metric_batch(client, trained.run_id, numeric_metrics({"trigger": diagnostics}))
        else:
            print(f"[bench] the EBM's MLflow run {trained.run_id} is not in {tracking_uri()}: trigger diagnostics "
                  f"only printed", flush=True)
        result["seeds"][seed] = {**per_attack, "why": diagnostics}
        print(f"[bench] seed {seed}: {json.dumps(result['seeds'][seed])}", flush=True)
    halves = {t: all(_halves(per[name][t]) for per in result["seeds"].values() for name in poisons) for t in steps}
    result["all_seeds_halve"] = halves[steps[0]]
    result["all_seeds_halve_by_T"] = halves
    print(json.dumps(result))


def why(purifier: EbmPurifier, model_dir: Path, test: ImageSet, poisons: dict[str, PoisonSet],
        target: int) -> dict[str, dict[str, Any]]:
    """Return, per attack, what the EBM makes of its trigger (x1) on up to PROBE_IMAGES non-target test images:
    `trigger_kept` {T: share of the trigger left along its direction after Psi_T, 1 = intact}, `energy_gap_sd`
    (mean energy rise of the triggered images, in clean-energy standard deviations) and `drift_per_step` (share of
    the trigger one Langevin drift step takes back at the triggered images)."""
    probe = test.images[test.labels != target][:PROBE_IMAGES]
    scorer = EnergyScorer(EnergyModelSettings(checkpoint=str(model_dir), device="cpu"))
    out = {}
    for name, poison in poisons.items():
        triggered = poison.trigger.apply(probe, 1.0)
        out[name] = {"trigger_kept": {t: round(v, 3) for t, v in trigger_kept(purifier, probe, triggered).items()},
                     "energy_gap_sd": round(energy_gap_sd(scorer, probe, triggered), 2),
                     "drift_per_step": round(drift_along_trigger(purifier.sampler, probe, triggered), 4)}
    return out


def _scores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {"success_before": before["success"], "success_after": after["success"],
            "accuracy_loss_points": 100 * (before["accuracy"] - after["accuracy"]),
            **({"success_x3_before": before["success_x3"], "success_x3_after": after["success_x3"]}
               if "success_x3" in after else {})}


def _halves(r: dict[str, float]) -> bool:
    return r["success_after"] <= 0.5 * r["success_before"] and r["accuracy_loss_points"] <= 3


def _arrays(images: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    return images.images, images.labels


if __name__ == "__main__":
    main()
