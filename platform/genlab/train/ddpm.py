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

`train_ddpm` runs `DdpmTrainer` through the shared driver `genlab.train.generative_common.train_generative`:
MLflow metrics every `log_every` iterations (loss, lr), a grid of training images, their forward
jump to t* = `purify_steps` and their purified version (with the mean absolute change in pixels)
every 4x that, a checkpoint every `checkpoint_every` iterations (weights and AdamW state as
safetensors, step and run id in JSON), resuming after a kill, and registering the final UNet under the
name the caller gives (jobs/train_ddpm.py: `genlab-ddpm-<training data>`). What the DDPM learns from
(the clean, a shifted or a poisoned training set) is the caller's choice: `genlab.sweep.provisioning`
holds the job config and the data switches of jobs/train_ddpm.py.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient
from pydantic import Field

from genlab.checkpoints import load_checkpoint, load_state_into, optimizer_tensors, restore_optimizer, save_checkpoint
from genlab.config import StrictModel
from genlab.data import ImageSet
from genlab.data.convert import SIGNED, to_pixels, to_tensor
from genlab.errors import ConfigError
from genlab.models.ddpm import CHECKPOINT_KIND, DdpmNetConfig, DdpmUNet, build_unet
from genlab.runtime import resolve_device, seeded_generator
from genlab.samplers.ddpm import NUM_TRAIN_TIMESTEPS, DdpmSampler, make_scheduler
from genlab.tracking import log_metrics
from genlab.train.generative_common import GenerativeTrainer, GenerativeTrainResult, train_generative
from genlab.visualize import save_image_grid


class DdpmTrainConfig(StrictModel):
    """DDPM training (defaults: a few CPU minutes on digits 16x16; conf/train_ddpm_cifar10.yaml has the paper's)."""

    experiment: str = "train-ddpm"  # MLflow experiment
    seed: int = 0  # seed of initial weights, minibatches, timesteps and noise
    model: DdpmNetConfig = Field(default_factory=DdpmNetConfig)  # the UNet; model.channels/sample_size must match the data
    iterations: int = Field(400, ge=1)  # AdamW steps in total (the paper: 150 epochs of 70k images at batch 256)
    batch_size: int = Field(64, ge=1)  # images per step (the paper: 256)
    lr: float = Field(3e-3, gt=0)  # peak AdamW learning rate (the paper: 1e-4)
    weight_decay: float = Field(0.01, ge=0)  # AdamW weight decay (the paper: torch's default 0.01)
    warmup_steps: int = Field(50, ge=0)  # linear warm-up iterations before the cosine decay (the paper: 500)
    train_timesteps: int = Field(250, ge=1, le=NUM_TRAIN_TIMESTEPS)  # t ~ U{0..train_timesteps-1} (the paper: 250)
    log_every: int = Field(50, ge=1)  # iterations between MLflow metric logs (grids every 4x this)
    checkpoint_every: int = Field(100, ge=1)  # iterations between checkpoints
    purify_steps: int = Field(75, ge=1, lt=NUM_TRAIN_TIMESTEPS)  # t* of the purified-training-images grid
    grid_size: int = Field(8, ge=1)  # images per grid row
    register_model: bool = True  # register the final UNet in the MLflow model registry
    device: str = "auto"  # auto (cuda when present), cpu or cuda


@dataclass
class TrainState:
    """Everything a checkpoint restores: net, optimizer and completed iterations."""

    model: DdpmUNet
    optimizer: torch.optim.AdamW
    step: int  # iterations completed


def learning_rate(cfg: DdpmTrainConfig, step: int) -> float:
    """Return the learning rate of iteration `step`: linear warm-up to `lr`, then a cosine decay to 0 at `iterations`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.iterations - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class DdpmTrainer(GenerativeTrainer[TrainState]):
    """DDPM training on `data` (float NCHW in [-1, 1] on the training device); `preview` images appear in the grids."""

    family = "ddpm"
    state_kind = "ddpm-train-state"
    model_kind = CHECKPOINT_KIND
    divergence_hint = "lower lr"

    def __init__(self, cfg: DdpmTrainConfig, data: torch.Tensor, preview: np.ndarray) -> None:
        super().__init__(cfg)
        self.data, self.preview = data, preview[:cfg.grid_size]
        self.device = data.device
        self.scheduler = make_scheduler()

    def init_state(self) -> TrainState:
        """Return a fresh state: a diffusers-initialised UNet (seeded) and AdamW."""
        torch.manual_seed(self.cfg.seed)
        model = build_unet(self.cfg.model).to(self.device)
        return TrainState(model, self._optimizer(model), 0)

    def _optimizer(self, model: DdpmUNet) -> torch.optim.AdamW:
        return torch.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def train_step(self, state: TrainState) -> dict[str, float]:
        """Run one iteration in place; return `loss` (the eps MSE of this minibatch) and `lr`."""
        cfg, data = self.cfg, self.data
        generator = seeded_generator(cfg.seed, state.step, bits=63)
        rows = torch.randint(len(data), (cfg.batch_size,), generator=generator).to(self.device)
        timesteps = torch.randint(cfg.train_timesteps, (cfg.batch_size,), generator=generator).to(self.device)
        noise = torch.randn((cfg.batch_size, *data.shape[1:]), generator=generator).to(self.device)
        state.model.train()
        noisy = self.scheduler.add_noise(data[rows], noise, timesteps)  # Eq. 4, x_t at each row's t
        loss = F.mse_loss(state.model(noisy, timesteps), noise)
        lr = learning_rate(cfg, state.step)
        self.optimizer_step(state, loss, lr)
        return {"loss": loss.item(), "lr": lr}

    def save_state(self, path: Path, state: TrainState, run_id: str) -> Path:
        """Write a training checkpoint (weights and AdamW state as safetensors; step, run id, config in JSON)."""
        optim_tensors, optim_json = optimizer_tensors(state.optimizer)
        return save_checkpoint(path, kind=self.state_kind, config=self.cfg,
                               tensors={"model": state.model.state_dict(), "optimizer": optim_tensors},
                               meta={"step": state.step, "mlflow_run_id": run_id, "optimizer": optim_json})

    def load_state(self, path: Path) -> tuple[TrainState, str]:
        """Return (state, MLflow run id) from a training checkpoint written with the same config."""
        tensors, index = load_checkpoint(path, kind=self.state_kind, device=self.device, expected_config=self.cfg)
        model = build_unet(self.cfg.model).to(self.device)
        load_state_into(model, tensors["model"], path)
        optimizer = self._optimizer(model)
        restore_optimizer(optimizer, tensors["optimizer"], index["meta"]["optimizer"])
        return TrainState(model, optimizer, int(index["meta"]["step"])), str(index["meta"]["mlflow_run_id"])

    def log_grids(self, client: MlflowClient, run_id: str, state: TrainState) -> None:
        """Log a grid of training images, their jump to t* and Psi_t*, and the mean absolute change (pixels)."""
        state.model.eval()
        sampler, t_star, preview = DdpmSampler(state.model), self.cfg.purify_steps, self.preview
        x0 = to_tensor(preview, SIGNED, self.device)
        noise = torch.randn(x0.shape, generator=seeded_generator(self.cfg.seed, -1, bits=63)).to(self.device)
        purified = to_pixels(sampler.purify(x0, [t_star], seed=self.cfg.seed, row_ids=np.arange(len(preview)))[t_star])
        change = float(np.abs(purified.astype(np.float32) - preview.astype(np.float32)).mean())
        log_metrics(client, run_id, {"purify_mean_abs_change": change}, state.step)
        with tempfile.TemporaryDirectory() as tmp:
            grid = save_image_grid([preview, to_pixels(sampler.q_sample(x0, t_star, noise)), purified],
                                   ["train", f"noised-t{t_star}", f"ddpm-t{t_star}"], Path(tmp) / f"purified-{state.step:07d}.png")
            client.log_artifact(run_id, str(grid), "purified")

    def model_meta(self) -> dict[str, Any]:
        """The training t-range and the scheduler's config (the purifier's schedule)."""
        scheduler = {k: v for k, v in self.scheduler.config.items() if not k.startswith("_")}
        return {"train_timesteps": self.cfg.train_timesteps, "scheduler": scheduler}


def train_ddpm(cfg: DdpmTrainConfig, train_set: ImageSet, preview: np.ndarray, out_dir: Path, *, run_name: str,
               registered_name: str) -> GenerativeTrainResult:
    """Train (or resume, or return the finished run in) `out_dir`: a DDPM on `train_set`, MLflow run `run_name`,
    registered as `registered_name` (when `cfg.register_model`).

    `preview`: uint8 NHWC training images of the dataset to purify, shown purified in the grids.
    The final UNet is `out_dir/model`. Raises `ConfigError` if the images do not fit `cfg.model`,
    `CheckpointError` if `out_dir` holds a checkpoint of another config.
    """
    if train_set.shape != (cfg.model.sample_size, cfg.model.sample_size, cfg.model.channels):
        raise ConfigError(f"config keys model.sample_size/model.channels: the UNet takes {cfg.model.sample_size}x"
                          f"{cfg.model.sample_size}x{cfg.model.channels} images, the training set has {train_set.shape}")
    trainer = DdpmTrainer(cfg, to_tensor(train_set.images, SIGNED, resolve_device(cfg.device)), preview)
    return train_generative(trainer, out_dir, run_name=run_name, registered_name=registered_name,
                            dataset_hash=train_set.hash)
