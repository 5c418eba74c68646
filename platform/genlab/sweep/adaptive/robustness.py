"""Robust accuracy of a (purified) classifier under torchattacks' PGD, PGD-L2 and AutoAttack-rand.

An `AttackSpec` names one attack family at one or more budgets; `robust_accuracy` runs it on a
batch of test images against a `PurifiedClassifier` and evaluates the adversarial images with a
fresh EOT forward. Budgets are in [0, 1] pixel units (torchattacks' convention); a config may
write an L-inf budget as a fraction, e.g. "8/255".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
import torchattacks
from pydantic import Field, field_validator
from torch import nn

from genlab.config import StrictModel

AUTOATTACK_RAND_EOT = 20  # torchattacks' AutoAttack(version="rand") runs APGD-CE and APGD-DLR with eot_iter=20


class AttackSpec(StrictModel):
    """One attack family at its budgets (each budget is one run)."""

    name: Literal["pgd", "autoattack_rand"]  # PGD (torchattacks.PGD / PGDL2), or AutoAttack's rand version
    norm: Literal["Linf", "L2"] = "Linf"
    epsilons: list[float] = Field(min_length=1)  # budgets in [0, 1] pixel units; strings like "8/255" are accepted
    steps: int = Field(10, ge=1)  # PGD / APGD iterations (torchattacks' AutoAttack uses 10)
    step_fraction: float = Field(0.25, gt=0)  # PGD step size as a fraction of the budget (APGD adapts its own)
    eot_samples: int = Field(1, ge=1)  # purifier draws per gradient: EOT wrapper (pgd), APGD eot_iter (AA-rand: 20)
    random_start: bool = True  # PGD starts at a random point of the budget (the unbounded check starts at x)

    @field_validator("epsilons", mode="before")
    @classmethod
    def _fractions(cls, values: list[float | str]) -> list[float]:
        parsed = [float(Fraction(v)) if isinstance(v, str) else float(v) for v in values]
        if min(parsed) <= 0:
            raise ValueError("epsilons must be > 0 (in [0, 1] pixel units)")
        return parsed

    def label(self, epsilon: float) -> str:
        """Return e.g. `pgd-Linf-eps0.0314-s10-eot2` (the metric and table name of one run)."""
        return f"{self.name}-{self.norm}-eps{epsilon:.4g}-s{self.steps}-eot{self.eot_samples}"

    def wrapper_samples(self) -> int:
        """Return the purifier draws our EOT wrapper averages per forward (APGD does its own EOT: 1 there)."""
        return self.eot_samples if self.name == "pgd" else 1


def make_attack(spec: AttackSpec, model: nn.Module, epsilon: float, *, num_classes: int,
                seed: int) -> torchattacks.Attack:
    """Return the torchattacks attack of `spec` at budget `epsilon` against `model` (inputs in [0, 1])."""
    if spec.name == "autoattack_rand" and (spec.steps, spec.eot_samples) == (10, AUTOATTACK_RAND_EOT):
        return torchattacks.AutoAttack(model, norm=spec.norm, eps=epsilon, version="rand", n_classes=num_classes,
                                       seed=seed)
    if spec.name == "autoattack_rand":  # the same two APGD runs with fewer steps or EOT draws (CPU-sized)
        return torchattacks.MultiAttack([torchattacks.APGD(model, norm=spec.norm, eps=epsilon, steps=spec.steps,
                                                           seed=seed, loss=loss, eot_iter=spec.eot_samples)
                                         for loss in ("ce", "dlr")])
    alpha = spec.step_fraction * epsilon
    if spec.norm == "L2":
        return torchattacks.PGDL2(model, eps=epsilon, alpha=alpha, steps=spec.steps, random_start=spec.random_start)
    return torchattacks.PGD(model, eps=epsilon, alpha=alpha, steps=spec.steps, random_start=spec.random_start)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Return the fraction of `images` ([N, C, H, W] in [0, 1]) that `model` labels correctly."""
    correct = sum(int((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
                  for i in range(0, len(images), batch_size))
    return correct / max(len(images), 1)


@dataclass(frozen=True)
class AttackOutcome:
    """One attack run: robust accuracy (fraction in [0, 1]), wall seconds, purifier images transformed."""

    robust_accuracy: float
    seconds: float
    purified_images: int


def robust_accuracy(spec: AttackSpec, epsilon: float, attacked: nn.Module, judge: nn.Module, images: torch.Tensor,
                    labels: torch.Tensor, *, num_classes: int, seed: int, counter: object | None = None,
                    batch_size: int = 256) -> AttackOutcome:
    """Attack `attacked` at `epsilon` and return `judge`'s accuracy on the adversarial images.

    `attacked` and `judge` are usually the same classifier with different EOT sample counts
    (attack draws vs evaluation draws). `counter` (a transform with an `images` count) measures
    how many images the purifier transformed during the attack.
    """
    torch.manual_seed(seed)
    before = getattr(counter, "images", 0)
    started = time.perf_counter()
    attack = make_attack(spec, attacked, epsilon, num_classes=num_classes, seed=seed)
    adversarial = torch.cat([attack(images[i:i + batch_size], labels[i:i + batch_size])
                             for i in range(0, len(images), batch_size)])
    seconds = time.perf_counter() - started
    return AttackOutcome(accuracy(judge, adversarial, labels, batch_size), seconds,
                         getattr(counter, "images", 0) - before)
