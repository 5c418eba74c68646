"""Training a CCGM: the causal phase on labels, then the generative phase (spec 6.4).

1. Causal phase (labels only, cheap): the gates and the mechanisms g_j are fitted to the
   normalised label table (a Causal Gen with learnable parent gates, input dropout, L1 on the
   gates); gates at or below 0.5 are then closed and each residual scale s_j is set to the sd
   of node j's label residual.
2. Generative phase: encoder, decoder and read-out are trained on the whole loss; the gates
   stay frozen and the mechanisms and scales train at `mechanism_lr_scale` times the rate, so
   reconstruction pressure cannot rewrite the causal structure.

`schedule: joint` (the CausalVAE-like ablation; always used by the CausalVAE baseline)
trains everything together in one phase of `epochs`.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import numpy as np
import torch
from pydantic import Field

from genlab.causal.ccgm.model import CCGM
from genlab.config import StrictModel
from genlab.errors import TrainingDivergedError


class CCGMTrainSettings(StrictModel):
    """How a CCGM is fitted (Adam, cosine learning rate to 0 within each phase)."""

    schedule: Literal["two_phase", "joint"] = "two_phase"  # two_phase: causal then generative (spec 6.4)
    causal_epochs: int = Field(60, ge=0)  # passes over the label table in the causal phase
    epochs: int = Field(40, ge=1)  # passes over the data in the generative (or joint) phase
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)  # peak Adam learning rate
    mechanism_lr_scale: float = Field(0.1, ge=0)  # generative phase: mechanisms' and scales' rate multiplier


def _run_epochs(params: list[dict], epochs: int, num_rows: int, batch_size: int, step_loss: Callable[[torch.Tensor], torch.Tensor],
                generator: torch.Generator, phase: str, on_epoch: Callable[[str, int, float], None] | None) -> list[float]:
    """Run Adam over `params` groups for `epochs`; return the mean loss per epoch (step_loss takes row indices)."""
    steps = math.ceil(num_rows / batch_size)
    optimizer = torch.optim.Adam(params)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * steps))
    history = []
    for epoch in range(epochs):
        order, total = torch.randperm(num_rows, generator=generator), 0.0
        for step in range(steps):
            loss = step_loss(order[step * batch_size:(step + 1) * batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) / steps
        if not np.isfinite(total):
            raise TrainingDivergedError(f"CCGM {phase} phase: non-finite loss in epoch {epoch}")
        history.append(total)
        if on_epoch is not None:
            on_epoch(phase, epoch, total)
    return history


def fit_ccgm(model: CCGM, inputs: torch.Tensor, labels: torch.Tensor, settings: CCGMTrainSettings, *, seed: int,
             on_epoch: Callable[[str, int, float], None] | None = None) -> dict[str, list[float]]:
    """Train `model` on inputs [N, ...] with raw labels [N, n]; return the loss per epoch of each phase.

    Sets the model's label statistics from `labels` first and its exogenous bank last; leaves
    the model in eval mode. `on_epoch(phase, epoch, loss)` is called after every epoch.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.label_mean.copy_(labels.mean(dim=0))
    model.label_std.copy_(labels.std(dim=0).clamp_min(1e-8))
    normalised = model.normalise(labels)
    causal, rate = model.causal, settings.lr
    history: dict[str, list[float]] = {}
    model.train()
    if settings.schedule == "two_phase" and model.config.settings.causal_layer == "ccgm":
        l1 = model.config.settings.losses.l1

        def causal_loss(rows: torch.Tensor) -> torch.Tensor:
            return causal.mechanism_error(normalised[rows]).mean() + l1 * causal.penalty()

        history["causal"] = _run_epochs([{"params": causal.causal_parameters(), "lr": rate}], settings.causal_epochs,
                                        len(labels), settings.batch_size, causal_loss, generator, "causal", on_epoch)
        causal.prune_gates()
        causal.gate_logits.requires_grad_(False)
        causal.set_residual_scales(normalised)
        groups = [{"params": [p for name, p in model.named_parameters() if not name.startswith("causal.")], "lr": rate},
                  {"params": causal.generative_parameters(), "lr": rate * settings.mechanism_lr_scale}]
    else:
        groups = [{"params": list(model.parameters()), "lr": rate}]

    def generative_loss(rows: torch.Tensor) -> torch.Tensor:
        return model.total_loss(model.loss_terms(inputs[rows], normalised[rows]))

    history["generative"] = _run_epochs(groups, settings.epochs, len(inputs), settings.batch_size, generative_loss,
                                        generator, "generative", on_epoch)
    model.eval()
    model.set_exogenous_bank(inputs, generator)
    return history
