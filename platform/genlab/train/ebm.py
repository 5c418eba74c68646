"""EBM training: maximum likelihood with persistent, data-initialised Langevin chains ("convergent" EBM).

Follows the official code (spec puregen.md §2.2, "follow the code"), not the paper's Alg. 2:

    bank  <- bank_size training images + data_noise * N(0, I)        (persistent chain states;
             `bank_init: uniform_noise` starts them as U(-1, 1) images, as the paper's Alg. 2)
    each iteration:
      x+  <- a random minibatch of training images + data_noise * N(0, I)
      Y   <- langevin_steps Langevin steps from randomly drawn bank states (same update and
             eps, tau as purification; no clamp)
      bank[drawn] <- Y, except each state is reset w.p. `rejuvenation` to its x+ row
      loss = (mean G(x+) - mean G(Y)) / tau;  one optimizer step (no energy regulariser, no clipping)

The optimizer is Adam (the code's, default) or plain SGD (`optimizer: sgd`, the paper's Alg. 2
values live in conf/train_ebm_paper.yaml: SGD lr 5e-5, data noise 0.02, step size 0.01).

Differences from the official loop, chosen for resumability: minibatches are drawn at random
each iteration (not in epochs), and every random draw of iteration i comes from generators
seeded by (seed, i), so a run resumed from a checkpoint continues exactly as the uninterrupted
run would have (`genlab.runtime.seeded_generator(seed, i, bits=63)`; the chains' noise is seeded by
`derive_seed("chains", seed, i)`). Learning-rate milestones count iterations, not epochs.

`train_ebm` runs `EbmTrainer` through the shared driver `genlab.train.generative_common.train_generative`:
MLflow metrics every `log_every` iterations (energies of data and samples, their difference, the
input-gradient norm), a grid of chain samples and one of purified training images every 4x that,
a checkpoint every `checkpoint_every` iterations (weights, optimizer state and bank as
safetensors, step counter in JSON; see `genlab.checkpoints`), resuming from the last checkpoint
of the same output directory, and registering the final EBM in the MLflow model registry.
What the EBM learns from (the clean, a shifted or a poisoned training set) is the caller's choice:
`genlab.sweep.provisioning` holds the job config and the data switches of jobs/train_ebm.py.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from mlflow.tracking import MlflowClient
from pydantic import Field

from genlab.checkpoints import load_checkpoint, load_state_into, optimizer_tensors, restore_optimizer, save_checkpoint
from genlab.config import StrictModel
from genlab.data import ImageSet
from genlab.data.convert import SIGNED, to_pixels, to_tensor
from genlab.errors import CheckpointError, ConfigError
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.runtime import derive_seed, resolve_device, seeded_generator
from genlab.samplers.langevin import LangevinSampler
from genlab.train.generative_common import GenerativeTrainer, GenerativeTrainResult, train_generative
from genlab.visualize import save_image_grid


class EbmTrainConfig(StrictModel):
    """EBM training (defaults: a few CPU minutes on digits 16x16; conf/train_ebm_cifar10.yaml has the code's settings)."""

    experiment: str = "train-ebm"  # MLflow experiment
    seed: int = 0  # seed of initial weights, bank, minibatches, data noise and chains
    model: EbmNetConfig = Field(default_factory=EbmNetConfig)  # energy net; model.channels must match the data
    iterations: int = Field(800, ge=1)  # optimizer steps in total
    batch_size: int = Field(32, ge=1)  # data images and chain states per step (the paper: 128 over 8 cores)
    optimizer: Literal["adam", "sgd"] = "adam"  # adam: the code's; sgd: plain SGD, the paper's Alg. 2
    lr: float = Field(1e-4, gt=0)  # learning rate (the code: Adam 1e-4; the paper: SGD 5e-5)
    lr_milestones: list[int] = Field(default_factory=list)  # iterations at which lr is multiplied by lr_decay
    lr_decay: float = Field(0.1, gt=0, le=1)  # multiplier at each milestone
    bank_size: int = Field(1000, ge=1)  # persistent chain states (the code: 10,000)
    bank_init: Literal["data", "uniform_noise"] = "data"  # data: training images + data noise (the code); uniform_noise: U(-1, 1) images (the paper's Alg. 2)
    rejuvenation: float = Field(0.05, ge=0, le=1)  # chance a drawn chain state is reset to its fresh data image
    langevin_steps: int = Field(100, ge=1)  # Langevin steps per iteration on the drawn states (the code: 100)
    step_size: float = Field(1.25e-2, gt=0)  # Langevin eps, [-1,1] units (the code: 1.25e-2; the paper: 0.01)
    temperature: float = Field(1e-4, gt=0)  # Langevin tau (the code: 1e-4)
    data_noise: float = Field(0.015, ge=0)  # std of noise added to data images, [-1,1] units (the code: 0.015; the paper: 0.02)
    log_every: int = Field(50, ge=1)  # iterations between MLflow metric logs (grids every 4x this)
    checkpoint_every: int = Field(100, ge=1)  # iterations between checkpoints
    purify_steps: int = Field(150, ge=1)  # T of the purified-training-images grid
    grid_size: int = Field(8, ge=1)  # images per grid row
    register_model: bool = True  # register the final EBM in the MLflow model registry
    device: str = "auto"  # auto (cuda when present), cpu or cuda


@dataclass
class TrainState:
    """Everything a checkpoint restores: net, optimizer, chain bank and completed iterations."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    bank: torch.Tensor  # [bank_size, C, H, W] chain states, [-1,1] units
    step: int  # iterations completed


def learning_rate(cfg: EbmTrainConfig, step: int) -> float:
    """Return the learning rate of iteration `step` (lr times lr_decay per milestone passed)."""
    return cfg.lr * cfg.lr_decay ** sum(step >= m for m in cfg.lr_milestones)


def make_optimizer(cfg: EbmTrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Return the optimizer `cfg.optimizer` names over the model's parameters (Adam, or SGD without momentum)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


class EbmTrainer(GenerativeTrainer[TrainState]):
    """EBM training on `data` (float NCHW in [-1, 1] on the training device); `preview` images appear purified in the grids."""

    family = "ebm"
    state_kind = "ebm-train-state"
    model_kind = "ebm"
    divergence_hint = "lower lr or step_size"

    def __init__(self, cfg: EbmTrainConfig, data: torch.Tensor, preview: np.ndarray) -> None:
        super().__init__(cfg)
        self.data, self.preview = data, preview[:cfg.grid_size]
        self.device = data.device
        self.sampler: LangevinSampler | None = None  # built on the state's model (fresh or restored)

    def _with_sampler(self, state: TrainState) -> TrainState:
        self.sampler = LangevinSampler(state.model, step_size=self.cfg.step_size, temperature=self.cfg.temperature)
        return state

    def init_state(self) -> TrainState:
        """Return a fresh state: Xavier-initialised net, the optimizer, and the bank (`bank_init`:
        data rows (cycled) + data noise, or U(-1, 1) images)."""
        cfg, data = self.cfg, self.data
        torch.manual_seed(cfg.seed)
        model = build_ebm(cfg.model).to(self.device)
        generator = seeded_generator(cfg.seed, -1, bits=63)
        shape = (cfg.bank_size, *data.shape[1:])
        if cfg.bank_init == "uniform_noise":
            bank = (torch.rand(shape, generator=generator) * 2 - 1).to(self.device)
        else:
            rows = torch.randperm(len(data), generator=generator).repeat(cfg.bank_size // len(data) + 1)[:cfg.bank_size]
            bank = data[rows.to(self.device)] + cfg.data_noise * torch.randn(shape, generator=generator).to(self.device)
        return self._with_sampler(TrainState(model, make_optimizer(cfg, model), bank, 0))

    def train_step(self, state: TrainState) -> dict[str, float]:
        """Run one MCMC maximum-likelihood iteration in place; return its diagnostics.

        Metrics: `energy_data` and `energy_samples` (mean G of x+ and of the chain samples Y),
        `energy_diff` (their difference), `grad_norm` (mean ||grad_x G / tau|| per image along the
        chains), `loss` ((energy_data - energy_samples) / tau), `lr` and `gradient_evaluations`
        (image-gradient evaluations of the chains so far).
        """
        cfg, data, device = self.cfg, self.data, self.device
        generator = seeded_generator(cfg.seed, state.step, bits=63)
        batch_rows = torch.randint(len(data), (cfg.batch_size,), generator=generator).to(device)
        positive = data[batch_rows] + cfg.data_noise * torch.randn((cfg.batch_size, *data.shape[1:]), generator=generator).to(device)
        drawn = torch.randperm(len(state.bank), generator=generator)[:cfg.batch_size].to(device)
        reset = (torch.rand(len(drawn), generator=generator) < cfg.rejuvenation).to(device)
        state.model.eval().requires_grad_(False)  # the chains need input gradients only
        chain = self.sampler.run(state.bank[drawn], steps=cfg.langevin_steps, seed=derive_seed("chains", cfg.seed, state.step),
                                 row_ids=drawn.cpu().numpy())
        samples = chain.snapshots[cfg.langevin_steps]
        state.model.requires_grad_(True)
        state.bank[drawn] = torch.where(reset[:, None, None, None], positive[:len(drawn)], samples)
        state.model.train()
        energy_data = state.model(positive).mean()
        energy_samples = state.model(samples).mean()
        loss = (energy_data - energy_samples) / cfg.temperature
        lr = learning_rate(cfg, state.step)
        self.optimizer_step(state, loss, lr)
        return {"energy_data": energy_data.item(), "energy_samples": energy_samples.item(),
                "energy_diff": (energy_data - energy_samples).item(), "grad_norm": chain.mean_grad_norm,
                "loss": loss.item(), "lr": lr, "gradient_evaluations": float(state.step * chain.gradient_evaluations)}

    def save_state(self, path: Path, state: TrainState, run_id: str) -> Path:
        """Write a training checkpoint (weights, optimizer state, bank as safetensors; step, run id, config in JSON)."""
        optim_tensors, optim_json = optimizer_tensors(state.optimizer)
        return save_checkpoint(path, kind=self.state_kind, config=self.cfg,
                               tensors={"model": state.model.state_dict(), "optimizer": optim_tensors, "bank": {"bank": state.bank}},
                               meta={"step": state.step, "mlflow_run_id": run_id, "optimizer": optim_json})

    def load_state(self, path: Path) -> tuple[TrainState, str]:
        """Return (state, MLflow run id) from a training checkpoint written with the same config."""
        cfg = self.cfg
        tensors, index = load_checkpoint(path, kind=self.state_kind, device=self.device, expected_config=cfg)
        model = build_ebm(cfg.model).to(self.device)
        load_state_into(model, tensors["model"], path)
        optimizer = make_optimizer(cfg, model)
        restore_optimizer(optimizer, tensors["optimizer"], index["meta"]["optimizer"])
        bank = tensors["bank"]["bank"]
        if bank.shape[0] != cfg.bank_size:
            raise CheckpointError(f"{path}: bank holds {bank.shape[0]} states, config says {cfg.bank_size}")
        state = TrainState(model, optimizer, bank, int(index["meta"]["step"]))
        return self._with_sampler(state), str(index["meta"]["mlflow_run_id"])

    def log_grids(self, client: MlflowClient, run_id: str, state: TrainState) -> None:
        """Log a grid of chain states and one of training images before/after Psi_T (T = purify_steps)."""
        cfg, preview = self.cfg, self.preview
        state.model.eval()
        purified = self.sampler.run(to_tensor(preview, SIGNED, self.device), steps=cfg.purify_steps, seed=cfg.seed,
                                    row_ids=np.arange(len(preview))).snapshots[cfg.purify_steps]
        with tempfile.TemporaryDirectory() as tmp:
            samples = save_image_grid([to_pixels(state.bank[i * cfg.grid_size:(i + 1) * cfg.grid_size]) for i in range(2)],
                                      ["bank", "bank"], Path(tmp) / f"samples-{state.step:07d}.png")
            client.log_artifact(run_id, str(samples), "samples")
            before_after = save_image_grid([preview, to_pixels(purified)], ["train", f"ebm-T{cfg.purify_steps}"],
                                           Path(tmp) / f"purified-{state.step:07d}.png")
            client.log_artifact(run_id, str(before_after), "purified")

    def model_meta(self) -> dict[str, Any]:
        """The Langevin step size and temperature the EBM was trained with (the purifier's defaults)."""
        return {"step_size": self.cfg.step_size, "temperature": self.cfg.temperature}


def train_ebm(cfg: EbmTrainConfig, ebm_train: ImageSet, preview: np.ndarray, out_dir: Path, *, run_name: str,
              registered_name: str) -> GenerativeTrainResult:
    """Train (or resume, or return the finished run in) `out_dir`: an EBM on `ebm_train`, MLflow run `run_name`,
    registered as `registered_name` (when `cfg.register_model`).

    `preview`: uint8 NHWC training images of the dataset to purify, shown purified in the grids.
    The final EBM is `out_dir/model` (kind `ebm`). Raises `ConfigError` if the images do not fit
    `cfg.model`, `CheckpointError` if `out_dir` holds a checkpoint of another config.
    """
    if cfg.model.channels != ebm_train.shape[2]:
        raise ConfigError(f"config key model.channels: {cfg.model.channels}, but the data have {ebm_train.shape[2]} channels")
    trainer = EbmTrainer(cfg, to_tensor(ebm_train.images, SIGNED, resolve_device(cfg.device)), preview)
    return train_generative(trainer, out_dir, run_name=run_name, registered_name=registered_name,
                            dataset_hash=ebm_train.hash)
