"""Fitting a model's replicas on their tables, and scoring them on the held-out tails.

A replica is one (seed, split) pair: the table drawn for that seed, split on one variable
into a train part and a deliberately out-of-distribution test tail, both standardised with
the train part's statistics. All replicas of a model are trained together (see genlab.models.causal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from pydantic import Field
from torch import nn

from genlab.causal.splits import Standardizer, random_split, split_mask
from genlab.config import StrictModel
from genlab.errors import TrainingDivergedError
from genlab.models.causal import CausalGenSettings, CausalVariationalGenSettings, VAESettings, build_model


class TrainSettings(StrictModel):
    """How each model is fitted (Adam, cosine learning rate to 0, minibatches)."""

    epochs: int = Field(100, ge=1)  # passes over the train split
    batch_size: int = Field(32, ge=1)  # rows per step
    lr: float = Field(1e-3, gt=0)  # peak Adam learning rate


@dataclass(frozen=True)
class Replica:
    """One (seed, split column) table: standardised train and test rows, float32 [N, n] each."""

    seed: int
    column: int
    train: np.ndarray
    test: np.ndarray


def make_replicas(tables: dict[int, np.ndarray], columns: list[int], quantile: float, kind: str = "tail"
                  ) -> list[Replica]:
    """Return one replica per (seed, column), seeds in the order of `tables`, then columns.

    kind `tail`: the test rows are the `quantile` tail of the column; `random`: a random share of
    the same size (genlab.causal.splits.split_mask).
    """
    replicas = []
    for seed, table in tables.items():
        for column in columns:
            test = split_mask(table, column, kind, quantile, seed)
            scaler = Standardizer.fit(table[~test])
            replicas.append(Replica(seed, column, scaler.transform(table[~test]), scaler.transform(table[test])))
    return replicas


def noise_groups(replicas: list[Replica]) -> list[int] | None:
    """Return one noise group per replica, numbered by first appearance: replicas with the same (seed, column)
    hold the same rows (candidate graphs batched on one table), so they share minibatches and noise.
    None when no two replicas share a table (every replica draws its own)."""
    keys = [(r.seed, r.column) for r in replicas]
    number = {key: index for index, key in enumerate(dict.fromkeys(keys))}
    return None if len(number) == len(keys) else [number[key] for key in keys]


def _stack(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tables of different lengths: (rows [R, N_max, n] zero-padded, valid mask [R, N_max])."""
    longest = max(len(a) for a in arrays)
    rows = torch.zeros(len(arrays), longest, arrays[0].shape[1])
    valid = torch.zeros(len(arrays), longest, dtype=torch.bool)
    for r, array in enumerate(arrays):
        rows[r, :len(array)] = torch.tensor(array)
        valid[r, :len(array)] = True
    return rows, valid


def fit(model: nn.Module, replicas: list[Replica], settings: TrainSettings,
        on_epoch: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """Train every replica of `model` on its train rows; return the mean loss per epoch, float [epochs, R].

    Each epoch visits every train row of every replica once in a random order (shorter tables
    are topped up with extra random rows); replicas of one noise group (`noise_groups`) share
    the order. Randomness comes from torch's global generator: seed it first.
    `on_epoch(epoch, losses [R])` is called after each epoch.
    """
    data, _ = _stack([r.train for r in replicas])
    groups = noise_groups(replicas) or list(range(len(replicas)))
    sizes = dict(zip(groups, (len(r.train) for r in replicas)))  # rows of each group's table, groups in order 0..G-1
    steps = math.ceil(data.shape[1] / settings.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs * steps)
    replica_index = torch.arange(len(replicas)).unsqueeze(1)
    history = np.zeros((settings.epochs, len(replicas)))
    model.train()
    for epoch in range(settings.epochs):
        per_group = [torch.cat([torch.randperm(n), torch.randperm(n)[:data.shape[1] - n]]) for n in sizes.values()]
        order = torch.stack([per_group[g] for g in groups])
        for step in range(steps):
            batch = data[replica_index, order[:, step * settings.batch_size:(step + 1) * settings.batch_size]]
            losses = model.loss(batch)
            optimizer.zero_grad()
            losses.sum().backward()
            optimizer.step()
            schedule.step()
            history[epoch] += losses.detach().numpy() / steps
        if not np.isfinite(history[epoch]).all():
            raise TrainingDivergedError(f"{type(model).__name__}: non-finite loss in epoch {epoch}")
        if on_epoch is not None:
            on_epoch(epoch, history[epoch])
    model.eval()
    return history


def column_mse(model: nn.Module, tables: list[np.ndarray]) -> np.ndarray:
    """Return each replica's per-column squared reconstruction error of `tables`, float64 [R, n]."""
    rows, valid = _stack(tables)
    with torch.no_grad():
        squared = (model.predict(rows) - rows) ** 2 * valid.unsqueeze(-1)
    return (squared.sum(dim=1) / valid.sum(dim=1, keepdim=True)).double().numpy()


def ood_errors(settings: CausalGenSettings | CausalVariationalGenSettings | VAESettings, train: TrainSettings, prior: np.ndarray, exogenous: np.ndarray, replicas: list[Replica],
               on_epoch: Callable[[int, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Fit a fresh model (one replica per entry of `replicas`) and score its endogenous columns.

    `settings` picks the model (a fully connected predictor is a CausalGenSettings); its own `lr`, if
    set, replaces train.lr. Returns `ood_mse` (on each
    replica's held-out tail) and `train_mse`, float64 [R] each: the mean over endogenous
    columns, standardised units^2. Seeded from the first replica's seed.
    """
    torch.manual_seed(replicas[0].seed)
    model = build_model(settings, prior, exogenous, seeds=[r.seed for r in replicas], groups=noise_groups(replicas))
    fit(model, replicas, train if settings.lr is None else train.model_copy(update={"lr": settings.lr}), on_epoch)
    endogenous = ~exogenous
    return {"ood_mse": column_mse(model, [r.test for r in replicas])[:, endogenous].mean(axis=1),
            "train_mse": column_mse(model, [r.train for r in replicas])[:, endogenous].mean(axis=1)}


def validation_replicas(replicas: list[Replica], share: float = 0.2) -> list[Replica]:
    """Return each replica with its train rows split again: a random `share` becomes the test rows (in
    distribution; the replica's held-out tail is not used), drawn from (seed, column)."""
    out = []
    for r in replicas:
        held = random_split(len(r.train), share, (r.seed, r.column, 7))
        out.append(Replica(r.seed, r.column, r.train[~held], r.train[held]))
    return out


def tune_learning_rate(settings: CausalGenSettings | CausalVariationalGenSettings | VAESettings, train: TrainSettings,
                       prior: np.ndarray, exogenous: np.ndarray, replicas: list[Replica], grid: list[float]
                       ) -> tuple[float, dict[float, float]]:
    """Return the learning rate of `grid` with the lowest in-distribution validation error, and the error of each.

    The error is the mean endogenous MSE on `validation_replicas` (standardised units^2): the
    tuning never sees the out-of-distribution tails the models are compared on.
    """
    validation = validation_replicas(replicas)
    settings = settings.model_copy(update={"lr": None})
    errors = {lr: float(ood_errors(settings, train.model_copy(update={"lr": lr}), prior, exogenous,
                                   validation)["ood_mse"].mean()) for lr in grid}
    return min(errors, key=errors.__getitem__), errors
