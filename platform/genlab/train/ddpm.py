"""DDPM training: eps-prediction MSE on the first `train_timesteps` forward steps only (spec puregen.md §3.2).

    each iteration:
      x0  <- a random minibatch of training images in [-1, 1]
      t   ~ U{0, ..., train_timesteps - 1}     (the paper: 250 of the 1000-step linear schedule)
      z   ~ N(0, I);  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z    (DDPMScheduler.add_noise)
      loss = MSE(eps_theta(x_t, t), z);  one AdamW step (lr: linear warm-up, then cosine to 0)

The model is never trained near the prior, which trades generation quality for restoration: it
only has to undo the small noise levels purification uses (t* = 75 .. 125).

Differences from the official loop, chosen for resumability (as in the EBM loop): minibatches
are drawn at random each iteration (not in epochs), every random draw of iteration i comes from
a generator seeded by (seed, i), and the learning rate is a function of the iteration, so a run
resumed from its checkpoint continues exactly as the uninterrupted run would have.

`train_ddpm` adds the bookkeeping: MLflow metrics every `log_every` iterations (loss, lr), a
grid of training images, their forward jump to t* = `purify_steps` and their purified version
(with the mean absolute change in pixels) every 4x that, a checkpoint every `checkpoint_every`
iterations (weights and AdamW state as safetensors, step and run id in JSON), resuming from the
last checkpoint of the same output directory, and registering the final UNet.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient
from pydantic import Field

from genlab.attacks import AttackConfig
from genlab.checkpoints import (load_checkpoint, load_state_into, optimizer_tensors, restore_optimizer,
                                save_checkpoint, save_model)
from genlab.config import StrictModel
from genlab.data import DatasetConfig, ImageSet
from genlab.data.convert import to_pixels, to_unit_range
from genlab.errors import TrainingDivergedError
from genlab.models.ddpm import DdpmNetConfig, DdpmUNet, build_unet
from genlab.samplers.ddpm import NUM_TRAIN_TIMESTEPS, DdpmSampler
from genlab.samplers.langevin import resolve_device
from genlab.train.generative_common import (iteration_generator, latest_checkpoint, log_metrics, publish_model,
                                            rotate_checkpoint, start_run)
from genlab.tracking import params_for, tracking_uri
from genlab.visualize import save_image_grid

STATE_KIND = "ddpm-train-state"
MODEL_KIND = "ddpm"
MODEL_ARTIFACT = "ddpm"


class DdpmTrainConfig(StrictModel):
    """DDPM training (defaults: a few CPU minutes on digits 16x16; conf/train_ddpm_cifar10.yaml has the paper's)."""

    experiment: str = "train-ddpm"  # MLflow experiment
    seed: int = 0  # seed of initial weights, minibatches, timesteps and noise
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)  # the dataset to purify (its format; grids)
    train_dataset: DatasetConfig | None = None  # learn from this dataset instead (resized/recoloured to `dataset`'s format); None = dataset
    poison: AttackConfig | None = None  # learn from a poisoned copy: this attack's crafted rows replace their clean rows
    model: DdpmNetConfig = Field(default_factory=DdpmNetConfig)  # the UNet; model.channels/sample_size must match the data
    iterations: int = Field(3000, ge=1)  # AdamW steps in total (the paper: 150 epochs of 70k images at batch 256)
    batch_size: int = Field(64, ge=1)  # images per step (the paper: 256)
    lr: float = Field(2e-3, gt=0)  # peak AdamW learning rate (the paper: 1e-4)
    weight_decay: float = Field(0.01, ge=0)  # AdamW weight decay (the paper: torch's default 0.01)
    warmup_steps: int = Field(100, ge=0)  # linear warm-up iterations before the cosine decay (the paper: 500)
    train_timesteps: int = Field(250, ge=1, le=NUM_TRAIN_TIMESTEPS)  # t ~ U{0..train_timesteps-1} (the paper: 250)
    log_every: int = Field(50, ge=1)  # iterations between MLflow metric logs (grids every 4x this)
    checkpoint_every: int = Field(250, ge=1)  # iterations between checkpoints
    purify_steps: int = Field(75, ge=1, lt=NUM_TRAIN_TIMESTEPS)  # t* of the purified-training-images grid
    grid_size: int = Field(8, ge=1)  # images per grid row
    register_model: bool = True  # register the final UNet in the MLflow model registry
    registered_name: str | None = None  # registry name; None = genlab-ddpm-<training data>, see registry_name()
    device: str = "auto"  # auto (cuda when present), cpu or cuda


@dataclass
class TrainState:
    """Everything a checkpoint restores: net, optimizer and completed iterations."""

    model: DdpmUNet
    optimizer: torch.optim.AdamW
    step: int  # iterations completed


@dataclass(frozen=True)
class DdpmTrainResult:
    """Where a finished training run put its outputs."""

    model_dir: Path  # checkpoint directory of the final UNet (kind `ddpm`)
    run_id: str  # MLflow run
    registered_name: str | None  # registry name (None if not registered)
    registered_version: str | None  # registry version
    resumed_from: int  # iteration the run resumed from (0 = fresh start)


def training_data_name(cfg: DdpmTrainConfig) -> str:
    """Return what the UNet learns from: `<dataset>` or `<dataset>-poisoned-<attack>`."""
    name = (cfg.train_dataset or cfg.dataset).name
    return f"{name}-poisoned-{cfg.poison.name}" if cfg.poison is not None else name


def registry_name(cfg: DdpmTrainConfig) -> str:
    """Return the registry name: `cfg.registered_name`, else `genlab-ddpm-<training data>` (e.g. genlab-ddpm-digits)."""
    return cfg.registered_name or f"genlab-ddpm-{training_data_name(cfg)}"


def learning_rate(cfg: DdpmTrainConfig, step: int) -> float:
    """Return the learning rate of iteration `step`: linear warm-up to `lr`, then a cosine decay to 0 at `iterations`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.iterations - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def init_state(cfg: DdpmTrainConfig, device: torch.device) -> TrainState:
    """Return a fresh state: a diffusers-initialised UNet (seeded) and AdamW."""
    torch.manual_seed(cfg.seed)
    model = build_unet(cfg.model).to(device)
    return TrainState(model, torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay), 0)


def train_step(cfg: DdpmTrainConfig, state: TrainState, data: torch.Tensor, sampler: DdpmSampler) -> dict[str, float]:
    """Run one iteration in place on `data` ([N, C, H, W] in [-1, 1]); return `loss` (the MSE) and `lr`."""
    device = data.device
    generator = iteration_generator(cfg.seed, state.step)
    rows = torch.randint(len(data), (cfg.batch_size,), generator=generator).to(device)
    timesteps = torch.randint(cfg.train_timesteps, (cfg.batch_size,), generator=generator).to(device)
    noise = torch.randn((cfg.batch_size, *data.shape[1:]), generator=generator).to(device)
    state.model.train()
    loss = F.mse_loss(state.model(sampler.q_sample(data[rows], timesteps, noise), timesteps), noise)
    if not torch.isfinite(loss):
        raise TrainingDivergedError(f"DDPM loss is {loss.item()} at iteration {state.step}; lower lr")
    lr = learning_rate(cfg, state.step)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.step += 1
    return {"loss": loss.item(), "lr": lr}


def save_state(path: Path, cfg: DdpmTrainConfig, state: TrainState, run_id: str) -> Path:
    """Write a training checkpoint (weights and AdamW state as safetensors; step, run id, config in JSON)."""
    optim_tensors, optim_json = optimizer_tensors(state.optimizer)
    return save_checkpoint(path, kind=STATE_KIND, config=cfg,
                           tensors={"model": state.model.state_dict(), "optimizer": optim_tensors},
                           meta={"step": state.step, "mlflow_run_id": run_id, "optimizer": optim_json})


def load_state(path: Path, cfg: DdpmTrainConfig, device: torch.device) -> tuple[TrainState, str]:
    """Return (state, MLflow run id) from a training checkpoint written with the same config."""
    tensors, index = load_checkpoint(path, kind=STATE_KIND, device=device, expected_config=cfg)
    model = build_unet(cfg.model).to(device)
    load_state_into(model, tensors["model"], path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    restore_optimizer(optimizer, tensors["optimizer"], index["meta"]["optimizer"])
    return TrainState(model, optimizer, int(index["meta"]["step"])), str(index["meta"]["mlflow_run_id"])


def _log_grid(client: MlflowClient, run_id: str, cfg: DdpmTrainConfig, state: TrainState, sampler: DdpmSampler,
              preview: np.ndarray) -> None:
    """Log a grid of training images, their jump to t* and Psi_t*; log the mean absolute change (pixels)."""
    state.model.eval()
    t_star = cfg.purify_steps
    x0 = to_unit_range(preview, sampler.device)
    noise = torch.randn(x0.shape, generator=iteration_generator(cfg.seed, -1)).to(sampler.device)
    purified = to_pixels(sampler.purify(x0, [t_star], seed=cfg.seed, row_ids=np.arange(len(preview)))[t_star])
    change = float(np.abs(purified.astype(np.float32) - preview.astype(np.float32)).mean())
    log_metrics(client, run_id, {"purify_mean_abs_change": change}, state.step)
    with tempfile.TemporaryDirectory() as tmp:
        grid = save_image_grid([preview, to_pixels(sampler.q_sample(x0, t_star, noise)), purified],
                               ["train", f"noised-t{t_star}", f"ddpm-t{t_star}"], Path(tmp) / f"purified-{state.step:07d}.png")
        client.log_artifact(run_id, str(grid), "purified")


def train_ddpm(cfg: DdpmTrainConfig, train_set: ImageSet, preview: np.ndarray, out_dir: Path) -> DdpmTrainResult:
    """Train (or resume training) a DDPM on `train_set`; checkpoint to `out_dir`; log to MLflow; register it.

    `preview`: uint8 NHWC training images of the dataset to purify, shown purified in the grids.
    Resumes from `out_dir/checkpoints/LATEST` when present (its config must equal `cfg`, else
    `CheckpointError`). The final UNet is written to `out_dir/model` (kind `ddpm`), logged as the
    run's `ddpm/` artifacts and, if `cfg.register_model`, registered as `registry_name(cfg)`.
    """
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    if train_set.shape != (cfg.model.sample_size, cfg.model.sample_size, cfg.model.channels):
        raise ValueError(f"model expects {cfg.model.sample_size}x{cfg.model.sample_size}x{cfg.model.channels} "
                         f"images, the training set has {train_set.shape}")
    data = to_unit_range(train_set.images, device)
    client = MlflowClient(tracking_uri())
    found = latest_checkpoint(out_dir, STATE_KIND)
    if found is not None:
        state, run_id = load_state(found, cfg, device)
        client.set_tag(run_id, "genlab.resumed_from", str(state.step))
        print(f"[genlab] resuming DDPM training from {found} (iteration {state.step})")
    else:
        state = init_state(cfg, device)
        run_id = start_run(client, experiment=cfg.experiment, run_name=f"ddpm-{training_data_name(cfg)}-seed{cfg.seed}",
                           dataset_hash=train_set.hash, seed=cfg.seed, params=params_for(cfg))
    resumed_from = state.step
    sampler = DdpmSampler(state.model)
    preview = preview[:cfg.grid_size]
    losses: list[float] = []
    try:
        while state.step < cfg.iterations:
            metrics = train_step(cfg, state, data, sampler)
            losses.append(metrics["loss"])
            last = state.step == cfg.iterations
            if state.step % cfg.log_every == 0 or last:
                metrics["loss"] = float(np.mean(losses))
                losses.clear()
                log_metrics(client, run_id, metrics, state.step)
                print(f"[genlab] ddpm iteration {state.step}/{cfg.iterations} loss={metrics['loss']:.4g} "
                      f"lr={metrics['lr']:.3g}", flush=True)
            if state.step % (4 * cfg.log_every) == 0 or last:
                _log_grid(client, run_id, cfg, state, sampler, preview)
            if state.step % cfg.checkpoint_every == 0 or last:
                rotate_checkpoint(out_dir, state.step, lambda path: save_state(path, cfg, state, run_id))
        state.model.eval()
        scheduler = {k: v for k, v in sampler.scheduler.config.items() if not k.startswith("_")}
        model_dir = save_model(out_dir / "model", state.model, kind=MODEL_KIND,
                               meta={"trained_on": train_set.hash, "iterations": state.step,
                                     "train_timesteps": cfg.train_timesteps, "scheduler": scheduler,
                                     "mlflow_run_id": run_id})
        name = registry_name(cfg) if cfg.register_model else None
        version = publish_model(client, run_id, model_dir, MODEL_ARTIFACT, name,
                                tags={"dataset": training_data_name(cfg), "kind": MODEL_KIND})
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "KILLED")
        raise
    return DdpmTrainResult(model_dir, run_id, name if version else None, version, resumed_from)
