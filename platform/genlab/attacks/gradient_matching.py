"""Gradient Matching / Witches' Brew (Geiping et al., ICLR 2021): targeted clean-label poisons for a
victim trained from scratch.

For one trial with target x_t and adversarial class y_adv, the poisons x_p = x_b + delta
(||delta||_inf <= epsilon, pixel units) keep their true labels y_b and are optimised so that the
surrogate's parameter gradient on them points where the target's adversarial gradient points:

    min_delta  1 - < grad_theta L(f(x_p), y_b), grad_theta L(f(x_t), y_adv) >
                   / ( ||grad_theta L(f(x_p), y_b)|| * ||grad_theta L(f(x_t), y_adv)|| )

with signed Adam (learning rate `step_size * epsilon`, decayed x0.1 at 3/8, 5/8 and 5/6 of the
steps), projection onto the epsilon ball after every step, a uniform random start and
`restarts` tries (the lowest loss wins), as in the paper.

Implemented natively, not with ART's `GradientMatchingAttack` (1.20.1): the optimisation is
the same, but on our models it (1) chooses the base rows itself with NumPy's global RNG, so a
trial's fixed bases are kept only by handing it nothing but the bases; (2) builds a DataLoader
with a worker process every epoch: 27 s per trial for 100 steps on 14 digit images on our
shared CPU, against about 5 s here; and (3) at that setting it hit 0 of 8 targets.

`snapshot_epochs` aligns the poisons at several points of the surrogate's training at once (the
loss is averaged over copies taken after those epochs), an ensemble in the spirit of the paper's
surrogate ensembles: a victim trained from scratch passes through all of them, not only the end.

Efficacy on the embedded data is reached only far above the paper's budget. Digits 16x16, small
CNN trained 8 epochs (surrogate and victim, victim seeded differently), 2% poisons (29) per
trial, 150 steps, adversarial log-probability of the target on two victims vs the clean model:
- one final surrogate (the paper's recipe): epsilon 32 moves it 1-3 nats of the 5-12 needed,
  gradient-norm base selection or retraining the surrogate on the poisons 3 times (Sleeper
  Agent) changes that little, and even epsilon 255 flips 0 of 3 targets;
- snapshots after epochs 1, 2, 4, 6, 8: epsilon 255 flips 3 of 3 targets (probability 0.6-0.9),
  epsilon 128 and 96 flip 1 of 3, epsilon 64 (also with 4% poisons) moves 1-4 nats, flips none.
A 16x16 grey digit carries 256 values (CIFAR 3072) and the surrogate is nearly certain about
the target (log-probability -5 to -12), so the budget that fits CIFAR moves it too little.

`adversarial_class: runner_up` (each trial's class is the surrogate's second choice for its
target) starts the targets closer (log-probability -2 to -9). Snapshots after epochs 2 and 4 of
6, 150 steps, 2% poisons, 6 random targets, victims seeded 1 and 2 (clean victims: 0 of 6):
- epsilon 56, the L2 size of CIFAR's epsilon 16 spread over 256 values: the target moves
  0.3-5.6 nats, 1 of 6 flips; 4% poisons: 2 of 6; surrogate and victim trained 24 epochs,
  epsilon 64, 4%: 3 of 6 (two more within 3 nats), at 54 s of crafting per trial;
- a harder draw of 8 targets (clean log-probability -5.5 to -8), epsilon 64, 4%, 16 epochs:
  1 of 8, the one clean victims already miss.
Tried and dropped: an ensemble of 3 surrogate seeds (no gain), the inner product in place of
the cosine (the poisons then push the target away), bases nearest the target in pixels
(under 0.8 nats of gain). The surrogate aligns closely (loss 0.006-0.02 after 50 steps);
what is missing is the transfer to a victim trained from another initialisation.

At epsilon 76 (0.3, MNIST's customary L-inf budget, the analogue of CIFAR's 8/255) the effect is
steady but bounded. Runner-up classes, 4% poisons, 100 steps, surrogate and victim trained 24
epochs, snapshots after epochs 4 and 8, 12 targets, victim seed 1: the target's adversarial
log-probability rises on 12 of 12 targets, by 1.8-5.6 nats (median about 3), yet only 1 of 12
crosses (clean victims: 0 of 12), a target the clean victim scored at -3.9. 8% poisons leave 6 of
those targets within -0.9 to +1.2 nats of where 4% leaves them, so budget does not buy the missing
nats. Also no gain: snapshots after epochs 1, 2, 3, 4, 6, 8 of 8 (within 0.7 nats), two surrogate
seeds x three snapshots (0.2-0.3 nats), random 2-pixel shifts while crafting, the perturbation drawn
at the digits' native 8x8 and upsampled. Adding a cross-entropy pull of the poisons toward the
target's class (weight 0.1) makes them look like that class to an independently trained clean model
(p 0.6-0.99) but moves the target less (0-3.8 nats): the victim fits such poisons without the
target's features. The 12-target measurement, with its per-target shifts and sign test, is one command:
    python bench/targeted_efficacy.py attack.trials=12 attack.epsilon=76 attack.budget=0.04 \\
        attack.adversarial_class=runner_up attack.steps=100 attack.surrogate.epochs=24 attack.snapshot_epochs=[4,8]
Capacity is the lever that moved targets furthest: the same recipe at small_cnn width 64 (surrogate and
victim 12 epochs, snapshots after epochs 2 and 4) raised the adversarial log-probability on 8 of 8 targets by
a median 4.2 nats (width 32, 24 epochs: 3.1) and flipped 2 targets the clean victim scored at -6.9 and -8.6;
poisoned 3 of 8 vs clean 1 of 8 (one target already misclassified clean), at about 125 s of crafting per trial
on one core (`attack.surrogate.width=64 attack.surrogate.epochs=12 attack.snapshot_epochs=[2,4]`). Eight more
targets (`seed=1`): up on 8 of 8, median +5.1 nats, poisoned 1 of 8 vs clean 0 of 8, six of the seven misses left
at -1.3 to -2.3 (clean -5.5 to -8.1). Over the 16 targets: 4 of 16 vs 1 of 16 (Fisher p 0.33), every target
moved up (sign test p 3e-5). A 500-row training set (8% poisons) did not help: median +2.5 nats, 3 of 8 vs 1 of 8.
Width 96 (6 targets, seed 1, 150 s of crafting per trial on 2 threads) is no further: up on 6 of 6, median +4.2 nats,
1 of 6 vs 0 of 6, the misses left at -1.5 to -3.7. Epsilon 128
with 8-epoch models and 60 steps: 0 of 12 vs 0 of 12 (median +1.6 nats); a MetaPoison-style objective (2
unrolled SGD steps) was fooled trivially by the unrolled model and did not move victims.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from genlab.attacks.poisonset import PoisonSet
from genlab.attacks.targeted import (Progress, TargetedAttackConfig, check_trial, model_device, nchw,
                                     project, quantize_within, surrogate_snapshots,
                                     targeted_poison_set)
from genlab.attacks.trials import TargetedTrial
from genlab.data.imageset import ImageSet


class GradientMatchingConfig(TargetedAttackConfig):
    """Witches' Brew: signed-Adam steps and step size of the gradient-alignment optimisation."""

    name: Literal["gradient_matching"] = "gradient_matching"
    steps: int = Field(250, ge=1)  # optimisation steps per restart (the paper: 250)
    step_size: float = Field(0.1, gt=0)  # Adam learning rate, in units of epsilon per step (the paper: 0.1)
    snapshot_epochs: list[int] = []  # surrogate epochs whose weights are aligned at too (loss averaged); [] = final only

    @model_validator(mode="after")
    def _snapshots_within_training(self) -> "GradientMatchingConfig":
        alignment_epochs(self.snapshot_epochs, self.surrogate.epochs)
        return self


def alignment_epochs(snapshot_epochs: list[int], surrogate_epochs: int) -> tuple[int, ...]:
    """Return the surrogate epochs poisons are aligned at: `snapshot_epochs` plus the final one, ascending.

    Raises ValueError naming `snapshot_epochs` if one lies outside 1..surrogate_epochs.
    """
    if any(not 1 <= e <= surrogate_epochs for e in snapshot_epochs):
        raise ValueError(f"snapshot_epochs {snapshot_epochs} must lie in 1..surrogate.epochs ({surrogate_epochs})")
    return tuple(sorted({*snapshot_epochs, surrogate_epochs}))


def parameter_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                       create_graph: bool) -> list[torch.Tensor]:
    """Return d(mean cross-entropy)/d(parameter) for every trainable parameter of `model`."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(images), labels)
    return list(torch.autograd.grad(loss, params, create_graph=create_graph))


def alignment_loss(poison_grad: list[torch.Tensor], target_grad: list[torch.Tensor]) -> torch.Tensor:
    """Return 1 - cosine similarity of two parameter gradients (0 = aligned, 2 = opposite)."""
    dot = sum((p * t).sum() for p, t in zip(poison_grad, target_grad))
    poison_norm = torch.sqrt(sum(p.pow(2).sum() for p in poison_grad))
    target_norm = torch.sqrt(sum(t.pow(2).sum() for t in target_grad))
    return 1 - dot / (poison_norm * target_norm)


def craft_gradient_matching(cfg: GradientMatchingConfig, train: ImageSet, test: ImageSet, trial: TargetedTrial,
                            seed: int, progress: Progress | None = None) -> PoisonSet:
    """Return the trial's Witches' Brew PoisonSet: its base rows perturbed within `cfg.epsilon` pixels, true labels."""
    check_trial(trial, train, test)
    models = surrogate_snapshots(train, cfg.surrogate, cfg.surrogate_seed, alignment_epochs(cfg.snapshot_epochs, cfg.surrogate.epochs))
    device = model_device(models[0])
    bases = nchw(train.images[trial.base_indices], device)
    labels = torch.as_tensor(train.labels[trial.base_indices], device=device)
    target = nchw(test.images[[trial.target_index]], device)
    adversarial = torch.tensor([trial.adversarial_class], device=device)
    target_grads = [[g.detach() for g in parameter_gradient(m, target, adversarial, create_graph=False)] for m in models]

    def ensemble_loss(poisons: torch.Tensor, create_graph: bool) -> torch.Tensor:
        return sum(alignment_loss(parameter_gradient(m, poisons, labels, create_graph=create_graph), g)
                   for m, g in zip(models, target_grads)) / len(models)

    generator = torch.Generator().manual_seed(seed)
    milestones = [int(cfg.steps * f) for f in (3 / 8, 5 / 8, 5 / 6)]
    best_loss, best = float("inf"), bases
    for restart in range(cfg.restarts):
        delta = ((torch.rand(bases.shape, generator=generator) * 2 - 1) * cfg.epsilon).to(device)
        delta = (project(bases + delta, bases, cfg.epsilon) - bases).requires_grad_(True)
        optimizer = torch.optim.Adam([delta], lr=cfg.step_size * cfg.epsilon)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
        for step in range(cfg.steps):
            loss = ensemble_loss(bases + delta, create_graph=True)
            (grad,) = torch.autograd.grad(loss, delta)
            delta.grad = grad.sign()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                delta.copy_(project(bases + delta, bases, cfg.epsilon) - bases)
            if progress is not None and (step + 1) % 50 == 0:
                progress(f"gradient_matching trial {trial.index} restart {restart + 1}/{cfg.restarts} "
                         f"step {step + 1}/{cfg.steps} alignment loss {loss.item():.4f}")
        with torch.no_grad():
            poisons = project(bases + delta, bases, cfg.epsilon)
        final = ensemble_loss(poisons, create_graph=False).item()
        if final < best_loss:
            best_loss, best = final, poisons
    images = quantize_within(train.images[trial.base_indices], best, cfg.epsilon)
    return targeted_poison_set(cfg, train, trial, images, seed=seed)
