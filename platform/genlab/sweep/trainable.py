"""The Tune trainable: train one classifier on one purified, poisoned set; report per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.runtime import derive_seed
from genlab.train.classifier import ClassifierConfig, train_classifier
from genlab.train.evaluation import natural_accuracy, poison_success_rate


class InjectedFault(RuntimeError):
    """Raised by trials selected by `faults.fail_trials_matching`."""


def _inject_fault(name: str, fail_matching: list[str], once_dir: str | None) -> None:
    """Raise InjectedFault if trial `name` matches; with `once_dir`, only on its first attempt (a marker file there)."""
    if not any(pattern in name for pattern in fail_matching):
        return
    if once_dir is not None:
        marker = Path(once_dir) / name
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    raise InjectedFault(f"fault injected into trial {name} (faults.fail_trials_matching)")


def defense_trial(config: dict[str, Any], *, training_sets: dict[str, Any], test: ImageSet,
                  poisons: dict[str, PoisonSet], classifier: dict[str, Any], fail_matching: list[str],
                  num_threads: int, finished: frozenset[str] = frozenset(), fail_once_dir: str | None = None) -> None:
    """Train a classifier for trial `config` and `tune.report` metrics after every epoch.

    `config["spec"]` holds `name`, `data_key`, `attack`, `seed`, `purify_images_per_s`; `training_sets`
    maps data keys to object refs of `(images, labels)`. Metrics: `epoch`, `train_loss`,
    `natural_accuracy`, `poison_success_rate` (trigger x1, the papers' number) and, for a trigger
    amplified at test time (Narcissus), `poison_success_rate_amplified` (fractions in [0, 1]). A trial named in `finished`
    (done by an earlier attempt of a resumed sweep, per MLflow) returns at once without training.
    A trial matching `fail_matching` raises InjectedFault (with `fail_once_dir`: on its first attempt only).
    """
    config = config["spec"]
    if config["name"] in finished:
        return
    torch.set_num_threads(max(1, num_threads))
    _inject_fault(config["name"], fail_matching, fail_once_dir)
    images, labels = ray.get(training_sets[config["data_key"]])
    poison = poisons[config["attack"]]
    cfg = ClassifierConfig.model_validate(classifier)

    def report(epoch: int, loss: float, model: torch.nn.Module) -> None:
        metrics = {"epoch": epoch, "train_loss": loss, "natural_accuracy": natural_accuracy(model, test),
                   "poison_success_rate": poison_success_rate(model, test, poison, magnitude=1.0)}
        if poison.test_magnitude != 1.0:  # Narcissus' x3 test-time trigger: a second metric beside the papers' x1
            metrics["poison_success_rate_amplified"] = poison_success_rate(model, test, poison)
        if config["purify_images_per_s"] is not None:
            metrics["purify_images_per_s"] = config["purify_images_per_s"]
        tune.report(metrics)

    train_classifier(images, labels, len(test.classes), cfg, seed=classifier_seed(config["seed"], config["attack"]),
                     on_epoch=report)


def classifier_seed(seed: int, poison_key: str) -> int:
    """Return the seed of a trial's classifier: derived from the trial's `seed` and its attack variant, so the
    trials of an attack's target classes differ in classifier seed too (the report's CIs cover it) while every
    purifier setting of one variant trains from the same seed (a paired comparison)."""
    return derive_seed("classifier", seed, poison_key)
