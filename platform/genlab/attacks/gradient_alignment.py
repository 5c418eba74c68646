"""Gradient alignment, the objective of Gradient Matching and Sleeper Agent: the poisons' parameter
gradient should point where the gradient of the attacker's goal points (cosine distance), averaged
over surrogate snapshots taken along its training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


def goal_gradients(models: list[nn.Module], images: torch.Tensor, labels: torch.Tensor) -> list[list[torch.Tensor]]:
    """Return, per model, the detached parameter gradient of the attacker's goal: `images` classified as `labels`."""
    return [[g.detach() for g in parameter_gradient(m, images, labels, create_graph=False)] for m in models]


def ensemble_alignment_loss(models: list[nn.Module], goals: list[list[torch.Tensor]], poisons: torch.Tensor,
                            labels: torch.Tensor, *, create_graph: bool) -> torch.Tensor:
    """Return the mean over `models` of the alignment loss (in [0, 2]) between the poisons' parameter gradient
    (with their `labels`) and that model's goal gradient in `goals`."""
    return sum(alignment_loss(parameter_gradient(m, poisons, labels, create_graph=create_graph), g)
               for m, g in zip(models, goals)) / len(models)
