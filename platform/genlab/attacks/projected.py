"""The projected optimiser of the perturbation attacks (Gradient Matching, Sleeper Agent, Bullseye
Polytope, Hidden Trigger): Adam inside the L-inf ball of radius epsilon around the clean bases (pixel
units, inside [0, 255]), and rounding the result to uint8 poisons that stay within the budget.

After every Adam step the poisons are projected back onto the ball. Two forms are in use:
- Gradient Matching and Sleeper Agent optimise the *offset* delta (poisons = bases + delta) with
  the gradient's sign ("signed Adam") and a x0.1 decay at 3/8, 5/8 and 5/6 of the steps;
- Bullseye Polytope and Hidden Trigger optimise the poisons themselves with the raw gradient and
  a cosine decay to zero.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import torch

from genlab.data.convert import PIXEL, to_pixels
from genlab.runtime import Progress

Schedule = Literal["cosine", "milestones"]


def project(poisons: torch.Tensor, bases: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Return `poisons` projected onto the L-inf ball of radius `epsilon` around `bases`, inside [0, 255]."""
    return torch.maximum(torch.minimum(poisons, bases + epsilon), bases - epsilon).clamp(0, 255)


def random_start(bases: torch.Tensor, epsilon: float, generator: torch.Generator) -> torch.Tensor:
    """Return poisons drawn uniformly within `epsilon` of `bases` (noise from the CPU `generator`), projected."""
    noise = (torch.rand(bases.shape, generator=generator) * 2 - 1).to(bases.device) * epsilon
    return project(bases + noise, bases, epsilon)


def quantize_within(bases: np.ndarray, perturbed: torch.Tensor, epsilon: float) -> np.ndarray:
    """Return uint8 NHWC poisons: `perturbed` (float NCHW, pixel units) rounded, kept within
    floor(epsilon) of the uint8 NHWC `bases` and within [0, 255]."""
    bound = int(np.floor(epsilon))
    base = bases.astype(np.int16)
    return np.clip(to_pixels(perturbed, PIXEL).astype(np.int16), base - bound, base + bound).astype(np.uint8)


def learning_rate_schedule(optimizer: torch.optim.Optimizer, kind: Schedule,
                           steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Return the per-step schedule: 'cosine' decays to zero over `steps`; 'milestones' multiplies the
    rate by 0.1 at 3/8, 5/8 and 5/6 of `steps` (Witches' Brew)."""
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(steps * f) for f in (3 / 8, 5 / 8, 5 / 6)], 0.1)


def step_reporter(progress: Progress | None, every: int, label: str, steps: int,
                  loss_name: str) -> Callable[[int, torch.Tensor], None]:
    """Return an `on_step` for `projected_adam` that sends `progress` the line '<label> step <s>/<steps>
    <loss_name> <loss>' every `every` steps (nothing without `progress`)."""
    def report(step: int, loss: torch.Tensor) -> None:
        if progress is not None and step % every == 0:
            progress(f"{label} step {step}/{steps} {loss_name} {loss.item():.4f}")
    return report


def projected_adam(variable: torch.Tensor, bases: torch.Tensor, epsilon: float,
                   loss_of: Callable[[torch.Tensor], torch.Tensor], *, steps: int, lr: float, schedule: Schedule,
                   offset: bool, signed: bool,
                   on_step: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Run `steps` Adam steps (learning rate `lr`, `schedule`) on `variable` in place, projecting after each;
    return the loss of the last step (a scalar tensor).

    `variable` (a leaf requiring grad) is the poisons (float NCHW, pixel units) or, with `offset`, their
    offset from `bases`; `loss_of` maps the poisons to the loss to minimise. `signed` steps on the
    gradient's sign. `on_step(step, loss)` runs after every step (`step` counts from 1).
    """
    optimizer = torch.optim.Adam([variable], lr=lr)
    scheduler = learning_rate_schedule(optimizer, schedule, steps)
    for step in range(1, steps + 1):
        loss = loss_of(bases + variable if offset else variable)
        (grad,) = torch.autograd.grad(loss, variable)
        variable.grad = grad.sign() if signed else grad
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            variable.copy_(project(bases + variable, bases, epsilon) - bases if offset
                           else project(variable, bases, epsilon))
        if on_step is not None:
            on_step(step, loss)
    return loss
