"""Test-time robustness of a purified classifier: classifier(Psi(x)) attacked by PGD (BPDA + EOT) and
AutoAttack-rand, next to the same classifier without the purifier, with the adaptive-evaluation
sanity checks (`genlab.sweep.adaptive.sanity`) computed on every run.

`run_adaptive_eval` is all of jobs/adaptive_eval.py after the purifier's model is provisioned:
train the classifier on the clean training set, pick `test_images` test rows, measure clean
accuracy, every (attack, budget) with and without the purifier, then the checks' extra runs
(twice the iterations, twice the EOT samples, an unbounded budget). One MLflow run holds the
config, every accuracy as a metric and summary.json as an artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import torch
from pydantic import Field, model_validator

from genlab.config import StrictModel
from genlab.data import DatasetConfig, ImageSet
from genlab.data.convert import UNIT, to_tensor
from genlab.fileio import write_json_atomic
from genlab.purify.ddpm import DdpmSettings
from genlab.purify.ebm import EbmSettings
from genlab.runtime import Progress, derive_seed, print_progress, resolve_device
from genlab.sweep.adaptive.eot import PurifiedClassifier
from genlab.sweep.adaptive.robustness import AttackOutcome, AttackSpec, accuracy, robust_accuracy
from genlab.sweep.adaptive.sanity import (
    Check,
    robust_below_clean,
    stronger_not_better,
    unbounded_breaks,
    undefended_not_stronger,
)
from genlab.sweep.adaptive.transforms import IdentityTransform, QuantizeSettings, StochasticTransform, transform_for
from genlab.tracking import tracked_run
from genlab.train.classifier import ClassifierConfig, train_classifier

AdaptivePurifier = Annotated[Union[EbmSettings, DdpmSettings, QuantizeSettings], Field(discriminator="name")]


class AdaptiveEvalConfig(StrictModel):
    """jobs/adaptive_eval.py: one purifier in front of one classifier, attacked at several budgets."""

    experiment: str = "adaptive-eval"  # MLflow experiment
    seed: int = 0  # classifier training, test rows, purifier noise and attack starts
    work_dir: str = ".genlab"  # generative models are trained once into <work_dir>/models (the sweep's cache)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    classifier: ClassifierConfig = Field(default_factory=lambda: ClassifierConfig(epochs=8))  # trained on clean data
    purifier: AdaptivePurifier = Field(default_factory=lambda: EbmSettings(langevin_steps=[50]))  # one T / t* value
    gradient: Literal["bpda", "full"] = "bpda"  # through the purifier: BPDA (identity backward) or its own graph
    test_images: int = Field(64, ge=8)  # test rows attacked (a seeded choice)
    eval_samples: int = Field(4, ge=1)  # purifier draws averaged when judging clean and adversarial images
    attacks: list[AttackSpec] = Field(min_length=1)  # the first PGD entry is the base of the stronger-attack check
    unbounded_steps: int = Field(20, ge=1)  # PGD iterations of the epsilon = 1 check
    batch_size: int = Field(256, ge=1)  # images per attack batch
    device: str = "auto"  # auto (cuda when present), cpu or cuda
    model_training: dict[str, str] = Field(  # a purifier without a model gets one trained by this config (cached)
        default_factory=lambda: {"ebm": "conf/train_ebm.yaml", "ddpm": "conf/train_ddpm.yaml"})

    @model_validator(mode="after")
    def _has_pgd(self) -> "AdaptiveEvalConfig":
        if not any(a.name == "pgd" for a in self.attacks):
            raise ValueError("attacks: need at least one pgd entry (the base of the stronger-attack sanity check)")
        return self


def run_adaptive_eval(cfg: AdaptiveEvalConfig, train: ImageSet, test: ImageSet, out_dir: Path,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Run the evaluation (cfg.purifier's model already has a local checkpoint); return summary.json's content.

    Accuracies are fractions in [0, 1]; `all_passed` says whether every sanity check passed.
    """
    progress = progress or print_progress
    device = resolve_device(cfg.device)
    label = cfg.purifier.label()
    with tracked_run(cfg.experiment, run_name=f"adaptive-{label}-{cfg.dataset.name}-seed{cfg.seed}", config=cfg,
                     seed=cfg.seed, dataset_hash=train.hash) as run:
        progress(f"adaptive eval: training the {cfg.classifier.arch} classifier on {len(train)} clean images")
        classifier = train_classifier(train.images, train.labels, len(train.classes), cfg.classifier,
                                      seed=derive_seed("adaptive-classifier", cfg.seed)).to(device)
        classifier.requires_grad_(False)
        count = min(cfg.test_images, len(test))
        rows = np.sort(np.random.default_rng(cfg.seed).choice(len(test), count, replace=False))
        images = to_tensor(test.images[rows], UNIT, device)
        labels = torch.as_tensor(test.labels[rows], device=device)
        transform = transform_for(cfg.purifier, differentiable=cfg.gradient == "full", seed=cfg.seed, device=device)
        evaluator = _Evaluator(cfg, classifier, transform, images, labels, len(train.classes), progress)
        summary = evaluator.summary(label)
        for name, value in _metrics(summary).items():
            run.log_metrics({name: value})
        run.client.log_dict(run.run_id, summary, "summary.json")
        run.finish_as(summary["all_passed"])
    write_json_atomic(Path(out_dir) / "summary.json", summary)
    return summary


class _Evaluator:
    """The measurements of one run: clean accuracies, each attack with and without the purifier, the checks."""

    def __init__(self, cfg: AdaptiveEvalConfig, classifier: torch.nn.Module, transform: StochasticTransform,
                 images: torch.Tensor, labels: torch.Tensor, num_classes: int, progress: Progress) -> None:
        self.cfg, self.classifier, self.transform = cfg, classifier, transform
        self.images, self.labels, self.num_classes, self.progress = images, labels, num_classes, progress
        self.judge = PurifiedClassifier(classifier, transform, samples=cfg.eval_samples, gradient=cfg.gradient)
        self.undefended = PurifiedClassifier(classifier, IdentityTransform())

    def run(self, spec: AttackSpec, epsilon: float, *, purified: bool = True) -> AttackOutcome:
        """Return one attack run against the purified (or the undefended) classifier."""
        attacked = (PurifiedClassifier(self.classifier, self.transform, samples=spec.wrapper_samples(),
                                       gradient=self.cfg.gradient) if purified else self.undefended)
        judge = self.judge if purified else self.undefended
        outcome = robust_accuracy(spec, epsilon, attacked, judge, self.images, self.labels,
                                  num_classes=self.num_classes, seed=self.cfg.seed, counter=self.transform,
                                  batch_size=self.cfg.batch_size)
        self.progress(f"adaptive eval: {spec.label(epsilon)} {'purified' if purified else 'undefended'}: "
                      f"robust accuracy {outcome.robust_accuracy:.3f} ({outcome.seconds:.1f} s)")
        return outcome

    def summary(self, label: str) -> dict[str, Any]:
        """Return summary.json's content: accuracies, per-attack outcomes and cost, the checks."""
        count = len(self.images)
        clean = accuracy(self.judge, self.images, self.labels)
        clean_undefended = accuracy(self.undefended, self.images, self.labels)
        self.progress(f"adaptive eval: clean accuracy {clean:.3f} with {label}, {clean_undefended:.3f} without")
        attacks, robust, undefended = [], {}, {}
        for spec in self.cfg.attacks:
            for epsilon in spec.epsilons:
                key = spec.label(epsilon)
                outcome, plain = self.run(spec, epsilon), self.run(spec, epsilon, purified=False)
                robust[key], undefended[key] = outcome.robust_accuracy, plain.robust_accuracy
                attacks.append({"attack": key, "name": spec.name, "norm": spec.norm, "epsilon": epsilon,
                                "steps": spec.steps, "eot_samples": spec.eot_samples,
                                "robust_accuracy": outcome.robust_accuracy,
                                "undefended_robust_accuracy": plain.robust_accuracy, "seconds": outcome.seconds,
                                "purified_images": outcome.purified_images})
        checks = [robust_below_clean(clean, robust, count), *self._checklist_runs(robust),
                  undefended_not_stronger(robust, undefended, count)]
        return {"purifier": label, "gradient": self.cfg.gradient, "test_images": count,
                "eval_samples": self.cfg.eval_samples, "clean_accuracy": clean,
                "undefended_clean_accuracy": clean_undefended, "attacks": attacks,
                "checks": [c.as_dict() for c in checks], "all_passed": all(c.passed for c in checks)}

    def _checklist_runs(self, robust: dict[str, float]) -> list[Check]:
        """Return the checks that need their own attack runs: stronger PGD, and PGD with epsilon = 1."""
        base = next(a for a in self.cfg.attacks if a.name == "pgd")
        epsilon = base.epsilons[0]
        stronger = {}
        for variant in (base.model_copy(update={"steps": 2 * base.steps}),
                        base.model_copy(update={"eot_samples": 2 * base.eot_samples})):
            stronger[variant.label(epsilon)] = self.run(variant, epsilon).robust_accuracy
        unbounded = base.model_copy(update={"norm": "Linf", "steps": self.cfg.unbounded_steps, "random_start": False})
        return [stronger_not_better(robust[base.label(epsilon)], stronger, len(self.images)),
                unbounded_breaks(self.run(unbounded, 1.0).robust_accuracy)]


def _metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Return the summary's numbers as MLflow metrics (robust_accuracy/<attack>, clean_accuracy, ...)."""
    metrics = {key: summary[key] for key in ("clean_accuracy", "undefended_clean_accuracy")}
    metrics["sanity_checks_passed"] = float(summary["all_passed"])
    for row in summary["attacks"]:
        metrics[f"robust_accuracy/{row['attack']}"] = row["robust_accuracy"]
        metrics[f"undefended_robust_accuracy/{row['attack']}"] = row["undefended_robust_accuracy"]
        metrics[f"attack_seconds/{row['attack']}"] = row["seconds"]
    return metrics


def last_line(summary: dict[str, Any]) -> str:
    """Return the job's last line: every check passed, or which failed and why."""
    failed = [c for c in summary["checks"] if not c["passed"]]
    if not failed:
        return f"[genlab] adaptive eval: all {len(summary['checks'])} sanity checks passed"
    return "[genlab] adaptive eval FAILED sanity checks: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
