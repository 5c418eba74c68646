"""The Tune trainable: train one classifier on one purified, poisoned set; report per epoch.

Every `checkpoint_every` epochs the classifier's training state goes to Tune with the report
(`tune.Checkpoint`, kept in the sweep's Tune storage); an attempt Tune retries after a failure
(`tune.max_failures`, e.g. a preempted spot worker) resumes from the last one
(`tune.get_checkpoint`), so it goes on past epoch 0.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.runtime import derive_seed
from genlab.sweep.defended_trial import train_trial_classifier
from genlab.sweep.set_store import load_training_set
from genlab.train.classifier import ClassifierConfig
from genlab.train.evaluation import natural_accuracy, poison_success_rate


class InjectedFault(RuntimeError):
    """Raised by trials selected by `faults.fail_trials_matching`."""


def _fault_due(name: str, fail_matching: list[str], once_dir: str | None) -> bool:
    """Return whether trial `name` matches `fail_matching`; with `once_dir`, only on its first attempt (a marker file
    there)."""
    if not any(pattern in name for pattern in fail_matching):
        return False
    if once_dir is not None:
        marker = Path(once_dir) / name
        if marker.exists():
            return False
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return True


CHECKPOINT_FILE = "classifier_state.pt"


def _resume_state() -> dict[str, Any] | None:
    """Return the training state of this trial's last Tune checkpoint (None on a first attempt), loaded without pickle."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True)


def _report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
    """`tune.report` the metrics, with `state` as a Tune checkpoint when given."""
    if state is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="classifier-") as directory:
        torch.save(state, Path(directory) / CHECKPOINT_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def defense_trial(config: dict[str, Any], *, training_sets: dict[str, Any], test: ImageSet,
                  poisons: dict[str, PoisonSet], classifier: dict[str, Any], fail_matching: list[str],
                  num_threads: int, finished: frozenset[str] = frozenset(), fail_once_dir: str | None = None,
                  checkpoint_every: int = 5, kill_at_epoch: int | None = None,
                  defenses: dict[str, dict[str, Any]] | None = None) -> None:
    """Train a classifier for trial `config` and `tune.report` metrics after every epoch.

    `config["spec"]` holds `name`, `data_key`, `attack`, `seed`, `purify_images_per_s`; `training_sets`
    maps data keys to object refs of `(images, labels)`. Metrics: `epoch`, `train_loss`,
    `natural_accuracy`, `poison_success_rate` (trigger x1, the papers' number; fractions in [0, 1]) and, for a
    trigger amplified at test time (Narcissus), `poison_success_rate_amplified`; `cost_s` and, for defenses that
    drop rows, their detection scores (genlab.sweep.defended_trial). A data key in `defenses` (its
    settings) trains under that defense. The classifier's seed is `classifier_seed`. A trial named in `finished`
    (done by an earlier attempt of a resumed sweep, per MLflow) returns at once without training.
    A trial matching `fail_matching` raises InjectedFault (with `fail_once_dir`: on its first attempt only), or,
    with `kill_at_epoch`, its worker process kills itself (SIGKILL, as a lost node) after reporting that epoch.
    The training state is checkpointed through Tune every `checkpoint_every` epochs; a retried attempt resumes from it.
    """
    config = config["spec"]
    if config["name"] in finished:
        return
    torch.set_num_threads(max(1, num_threads))
    fault = _fault_due(config["name"], fail_matching, fail_once_dir)
    if fault and kill_at_epoch is None:
        raise InjectedFault(f"fault injected into trial {config['name']} (faults.fail_trials_matching)")
    images, labels = load_training_set(training_sets[config["data_key"]])
    poison = poisons[config["attack"]]
    cfg = ClassifierConfig.model_validate(classifier)
    latest: dict[str, Any] = {}

    def report(epoch: int, loss: float, model: torch.nn.Module, extra: dict[str, float]) -> None:
        metrics = {"epoch": epoch, "train_loss": loss, "natural_accuracy": natural_accuracy(model, test),
                   "poison_success_rate": poison_success_rate(model, test, poison, magnitude=1.0), **extra}
        if poison.test_magnitude != 1.0:  # Narcissus' x3 test-time trigger: a second metric beside the papers' x1
            metrics["poison_success_rate_amplified"] = poison_success_rate(model, test, poison)
        if config["purify_images_per_s"] is not None:
            metrics["purify_images_per_s"] = config["purify_images_per_s"]
        due = epoch % checkpoint_every == 0 and epoch < cfg.epochs
        _report(metrics, latest.get("state") if due else None)
        if fault and epoch == kill_at_epoch:
            os.kill(os.getpid(), signal.SIGKILL)

    train_trial_classifier(images, labels, len(test.classes), cfg, (defenses or {}).get(config["data_key"]),
                           seed=classifier_seed(config["seed"], config["attack"]),
                           purify_images_per_s=config["purify_images_per_s"],
                           poisoned_rows=poison.base_indices, on_epoch=report,
                           resume=_resume_state(), on_state=lambda state: latest.update(state=state))


def classifier_seed(seed: int, poison_key: str) -> int:
    """Return the seed of a trial's classifier: derived from the trial's `seed` and its attack variant, so the
    trials of an attack's target classes differ in classifier seed too (the report's CIs cover it) while every
    purifier setting of one variant trains from the same seed (a paired comparison)."""
    return derive_seed("classifier", seed, poison_key)
