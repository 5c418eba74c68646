"""Seeded classifier training on uint8 NHWC images, with per-epoch callbacks."""

from __future__ import annotations

import math
import typing
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from genlab.config import StrictModel
from genlab.data.convert import PIXEL, to_tensor
from genlab.errors import TrainingDivergedError
from genlab.models.classifiers import ClassifierArch, NormalizedClassifier, build_classifier
from genlab.runtime import resolve_device
from genlab.train.protocols import PROTOCOL_FIELDS, Protocol, protocol_defaults
from genlab.train.transfer import pretrained_classifier


class ClassifierConfig(StrictModel):
    """How a classifier is built and trained (SGD with momentum; one-cycle cosine or triangular learning rate)."""

    protocol: Protocol = "standard"  # standard, or hlb: fills the fields left unset (genlab.train.protocols)
    arch: ClassifierArch = "small_cnn"  # small_cnn (embedded default), resnet18 (CIFAR stem) or hlb_resnet
    width: int = Field(32, ge=4)  # small_cnn channel width
    epochs: int = Field(12, ge=1)  # passes over the training set
    batch_size: int = Field(64, ge=1)  # minibatch size
    lr: float = Field(0.05, gt=0)  # peak SGD learning rate
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD momentum
    weight_decay: float = Field(5e-4, ge=0)  # L2 weight decay
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # cross-entropy label smoothing
    augment: bool = False  # random crop (pad 4 for 32px, 2 below) + horizontal flip, on the device
    schedule: Literal["one_cycle", "triangular"] = "one_cycle"  # cosine one-cycle, or linear up 25% / down
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast of forward and loss (GPU speed; CPU works too)
    channels_last: bool = False  # channels-last model and batches (faster convolutions on CUDA)
    compile: bool = False  # torch.compile the model (pays a compile at the first batch)
    device: str = "auto"  # auto (cuda when present), cpu or cuda
    regime: Literal["scratch", "linear_probe", "fine_tune"] = "scratch"  # from scratch, or from `pretrained` (genlab.train.transfer)
    pretrained: str | None = None  # checkpoint directory (transfer.save_classifier) that linear_probe / fine_tune start from

    @model_validator(mode="before")
    @classmethod
    def _apply_protocol(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("protocol") in PROTOCOL_FIELDS:  # unknown names fail field validation
            return {**protocol_defaults(data["protocol"], set(data)), **data}
        return data

    @model_validator(mode="after")
    def _pretrained_matches_regime(self) -> "ClassifierConfig":
        if (self.regime == "scratch") != (self.pretrained is None):
            raise ValueError(f"pretrained is needed by regime linear_probe / fine_tune and only by them "
                             f"(regime={self.regime}, pretrained={self.pretrained})")
        return self


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, per image."""
    n, _, h, w = batch.shape
    pad = 4 if h >= 32 else 2
    padded = F.pad(batch, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None]).to(batch.device)
    cols = (dx[:, None] + torch.arange(w)[None]).to(batch.device)
    index = torch.arange(n, device=batch.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = (torch.rand(n, generator=generator) < 0.5).to(batch.device)
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)


EpochCallback = Callable[[int, float, nn.Module], None]


class TrainingDefense(typing.Protocol):
    """A training-time defense (genlab.train.defenses: EPIC, friendly noise) that `train_classifier` consults."""

    def epoch_rows(self, epoch: int, model: nn.Module, data: torch.Tensor,
                   targets: torch.Tensor) -> torch.Tensor | None:
        """Return the row indices (int64, on the data's device) to train on in `epoch`, or None for all rows."""

    def batch(self, batch: torch.Tensor, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the batch (float pixels in [0, 255], rows `index` of the training set) the model trains on."""


def learning_rate_schedule(optimizer: torch.optim.Optimizer, cfg: ClassifierConfig,
                           total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Return the per-step schedule peaking at `cfg.lr`: one-cycle cosine (15% warm-up) or triangular (linear,
    peak at 25%); a constant rate when there are fewer than 4 steps (a one-cycle needs a step up and down)."""
    if total_steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    triangular = cfg.schedule == "triangular"
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps,
                                               pct_start=max(0.25 if triangular else 0.15, 2 / total_steps),
                                               anneal_strategy="linear" if triangular else "cos")


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, cfg: ClassifierConfig, *,
                     seed: int, on_epoch: EpochCallback | None = None, resume: dict[str, Any] | None = None,
                     on_state: Callable[[dict[str, Any]], None] | None = None,
                     defense: TrainingDefense | None = None) -> NormalizedClassifier:
    """Train a classifier on uint8 NHWC `images`; return it in eval mode.

    `on_epoch(epoch, mean_train_loss, model)` runs after every epoch (epochs count from 1).
    `on_state(state)` runs just before it with the training state after that epoch (`epoch`, the
    model's, optimizer's and schedule's state dicts, the generators' states: tensors and plain
    values, saveable with `torch.save` and loadable with `weights_only=True`); training given such
    a state as `resume` goes on from the epoch after it, as the uninterrupted run would.
    The training set and its augmentation stay on the device; `precision`, `channels_last` and
    `compile` change how the steps run, not what they compute. Raises `TrainingDivergedError` on
    a non-finite loss. A `defense` picks each epoch's rows and transforms each batch; the learning
    rate schedule still advances a full epoch of steps per epoch when it trains on fewer rows.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = resolve_device(cfg.device)
    data = to_tensor(images, PIXEL, device)
    targets = torch.tensor(labels, device=device)
    mean = data.mean(dim=(0, 2, 3)) / 255.0
    std = (data / 255.0).std(dim=(0, 2, 3)).clamp_min(1e-3)
    if cfg.regime == "scratch":
        net = build_classifier(cfg.arch, in_channels=data.shape[1], num_classes=num_classes, width=cfg.width)
        model = NormalizedClassifier(net, mean, std).to(device)
    else:
        model = pretrained_classifier(cfg.pretrained, cfg.regime, in_channels=data.shape[1], num_classes=num_classes,
                                      device=device)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    forward = torch.compile(model) if cfg.compile else model
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    schedule = learning_rate_schedule(optimizer, cfg, cfg.epochs * steps_per_epoch)
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        generator.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
    for epoch in range(1 + (resume["epoch"] if resume is not None else 0), cfg.epochs + 1):
        rows = defense.epoch_rows(epoch, model, data, targets) if defense is not None else None
        model.train()
        order = torch.randperm(len(data) if rows is None else len(rows), generator=generator).to(device)
        order = order if rows is None else rows[order]
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            index = order[start:start + cfg.batch_size]
            batch = data[index]
            if defense is not None:
                batch = defense.batch(batch, index, generator)
            if cfg.augment:
                batch = _augment(batch, generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                loss = F.cross_entropy(forward(batch.contiguous(memory_format=layout)), targets[index],
                                       label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"classifier loss is {loss.item()} at epoch {epoch}; lower classifier.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        for _ in range(steps_per_epoch - math.ceil(len(order) / cfg.batch_size)):
            schedule.step()  # a defense trained on fewer rows: the schedule keeps pace with the epochs
        model.eval()
        if on_state is not None:
            on_state({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "schedule": schedule.state_dict(), "generator": generator.get_state(),
                      "torch_rng": torch.get_rng_state()})
        if on_epoch is not None:
            on_epoch(epoch, total / max(1, len(order)), model)
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Return predicted labels int64 [N] for uint8 NHWC images."""
    device = next(model.parameters()).device
    out = [model(to_tensor(images[i:i + batch_size], PIXEL, device)).argmax(1).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, dtype=np.int64)
