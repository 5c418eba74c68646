"""EBM training: maximum likelihood with persistent, data-initialised Langevin chains ("convergent" EBM).

Follows the official code (spec puregen.md §2.2, "follow the code"), not the paper's Alg. 2:

    bank  <- bank_size training images + data_noise * N(0, I)        (persistent chain states)
    each iteration:
      x+  <- a random minibatch of training images + data_noise * N(0, I)
      Y   <- langevin_steps Langevin steps from randomly drawn bank states (same update and
             eps, tau as purification; no clamp)
      bank[drawn] <- Y, except each state is reset w.p. `rejuvenation` to its x+ row
      loss = (mean G(x+) - mean G(Y)) / tau;  one Adam step (no energy regulariser, no clipping)

Differences from the official loop, chosen for resumability: minibatches are drawn at random
each iteration (not in epochs), and every random draw of iteration i comes from generators
seeded by (seed, i), so a run resumed from a checkpoint continues exactly as the uninterrupted
run would have. Learning-rate milestones count iterations, not epochs.

`train_ebm` adds the bookkeeping: MLflow logging every `log_every` iterations (energies of data
and samples, their difference, the input-gradient norm, a grid of chain samples and one of
purified training images), a checkpoint every `checkpoint_every` iterations (weights, Adam
state and bank as safetensors, step counter in JSON; see `genlab.checkpoints`), resuming from
the last checkpoint of the same output directory, and registering the final EBM in the MLflow
model registry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import mlflow
import torch
from mlflow.tracking import MlflowClient
from pydantic import Field

from genlab.checkpoints import (load_checkpoint, load_state_into, log_checkpoint_artifacts, optimizer_tensors,
                                read_checkpoint_index, register_checkpoint, restore_optimizer, save_checkpoint,
                                save_model)
from genlab.config import StrictModel
from genlab.data import DatasetConfig, ImageSet, load_dataset
from genlab.data.convert import to_pixels, to_unit_range
from genlab.data.datasets import resize_images
from genlab.errors import CheckpointError, ConfigError, TrainingDivergedError
from genlab.fileio import write_json_atomic, write_text_atomic
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.samplers.langevin import LangevinSampler, resolve_device
from genlab.tracking import experiment_id, log_params, params_for, standard_tags, tracking_uri
from genlab.visualize import save_image_grid

STATE_KIND = "ebm-train-state"
MODEL_KIND = "ebm"
MODEL_ARTIFACT = "ebm"


class EbmTrainConfig(StrictModel):
    """EBM training (defaults: a few CPU minutes on digits 16x16; conf/train_ebm_cifar10.yaml has the paper's)."""

    experiment: str = "train-ebm"  # MLflow experiment
    seed: int = 0  # seed of initial weights, bank, minibatches, data noise and chains
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)  # the dataset to purify (grid of purified images)
    train_dataset: DatasetConfig | None = None  # learn from this dataset instead (resized/recoloured to `dataset`'s format); None = dataset
    model: EbmNetConfig = Field(default_factory=EbmNetConfig)  # energy net; model.channels must match the data
    iterations: int = Field(800, ge=1)  # Adam steps in total
    batch_size: int = Field(32, ge=1)  # data images and chain states per step (the paper: 128 over 8 cores)
    lr: float = Field(1e-4, gt=0)  # Adam learning rate (the code: 1e-4)
    lr_milestones: list[int] = Field(default_factory=list)  # iterations at which lr is multiplied by lr_decay
    lr_decay: float = Field(0.1, gt=0, le=1)  # multiplier at each milestone
    bank_size: int = Field(1000, ge=1)  # persistent chain states (the code: 10,000)
    rejuvenation: float = Field(0.05, ge=0, le=1)  # chance a drawn chain state is reset to its fresh data image
    langevin_steps: int = Field(100, ge=1)  # Langevin steps per iteration on the drawn states (the code: 100)
    step_size: float = Field(1.25e-2, gt=0)  # Langevin eps, [-1,1] units (the code: 1.25e-2)
    temperature: float = Field(1e-4, gt=0)  # Langevin tau (the code: 1e-4)
    data_noise: float = Field(0.015, ge=0)  # std of noise added to data images, [-1,1] units (the code: 0.015)
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
    optimizer: torch.optim.Adam
    bank: torch.Tensor  # [bank_size, C, H, W] chain states, [-1,1] units
    step: int  # iterations completed


@dataclass(frozen=True)
class EbmTrainResult:
    """Where a finished training run put its outputs."""

    model_dir: Path  # checkpoint directory of the final EBM (kind `ebm`)
    run_id: str  # MLflow run
    registered_name: str | None  # registry name (None if not registered)
    registered_version: str | None  # registry version
    resumed_from: int  # iteration the run resumed from (0 = fresh start)


def match_format(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Return uint8 NHWC images resized to shape's H x W and converted to its channel count (grey <-> RGB)."""
    h, w, c = shape
    if images.shape[1:3] != (h, w):
        if h != w:
            raise ConfigError(f"cannot resize training images to non-square {h}x{w}")
        images = resize_images(images, h)
    if images.shape[3] == c:
        return images
    if c == 1:
        return images.astype(np.float32).mean(axis=3, keepdims=True).round().astype(np.uint8)
    if images.shape[3] == 1:
        return np.repeat(images, c, axis=3)
    raise ConfigError(f"cannot convert {images.shape[3]}-channel training images to {c} channels")


def load_training_sets(cfg: EbmTrainConfig) -> tuple[ImageSet, ImageSet]:
    """Return (the EBM's training set, the training set of the dataset to purify), in the latter's format."""
    purify_train, _ = load_dataset(cfg.dataset)
    if cfg.train_dataset is None:
        ebm_train = purify_train
    else:
        other, _ = load_dataset(cfg.train_dataset)
        ebm_train = ImageSet(match_format(other.images, purify_train.shape), other.labels, other.classes)
    if cfg.model.channels != ebm_train.shape[2]:
        raise ConfigError(f"config key model.channels: {cfg.model.channels}, but the data have {ebm_train.shape[2]} channels")
    return ebm_train, purify_train


def _generator(seed: int, step: int) -> torch.Generator:
    """CPU generator for the draws of one iteration, seeded by (seed, step)."""
    key = hashlib.sha256(f"{seed}:{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little") & ((1 << 63) - 1))


def chain_seed(seed: int, step: int) -> int:
    """Seed of the Langevin noise of iteration `step` (its rows are keyed by bank index)."""
    return int.from_bytes(hashlib.sha256(f"chains:{seed}:{step}".encode()).digest()[:4], "little")


def init_state(cfg: EbmTrainConfig, data: torch.Tensor) -> TrainState:
    """Return a fresh state: Xavier-initialised net, Adam, bank = data rows (cycled) + data noise."""
    torch.manual_seed(cfg.seed)
    device = data.device
    model = build_ebm(cfg.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = _generator(cfg.seed, -1)
    rows = torch.randperm(len(data), generator=generator).repeat(cfg.bank_size // len(data) + 1)[:cfg.bank_size]
    noise = torch.randn((cfg.bank_size, *data.shape[1:]), generator=generator).to(device)
    return TrainState(model, optimizer, data[rows.to(device)] + cfg.data_noise * noise, 0)


def learning_rate(cfg: EbmTrainConfig, step: int) -> float:
    """Return the learning rate of iteration `step` (lr times lr_decay per milestone passed)."""
    return cfg.lr * cfg.lr_decay ** sum(step >= m for m in cfg.lr_milestones)


def train_step(cfg: EbmTrainConfig, state: TrainState, data: torch.Tensor, sampler: LangevinSampler) -> dict[str, float]:
    """Run one MCMC maximum-likelihood iteration in place; return its diagnostics.

    Metrics: `energy_data` and `energy_samples` (mean G of x+ and of the chain samples Y),
    `energy_diff` (their difference), `grad_norm` (mean ||grad_x G / tau|| per image along the
    chains), `loss` ((energy_data - energy_samples) / tau) and `lr`.
    """
    device = data.device
    generator = _generator(cfg.seed, state.step)
    batch_rows = torch.randint(len(data), (cfg.batch_size,), generator=generator).to(device)
    positive = data[batch_rows] + cfg.data_noise * torch.randn((cfg.batch_size, *data.shape[1:]), generator=generator).to(device)
    drawn = torch.randperm(len(state.bank), generator=generator)[:cfg.batch_size].to(device)
    reset = (torch.rand(len(drawn), generator=generator) < cfg.rejuvenation).to(device)
    state.model.eval().requires_grad_(False)  # the chains need input gradients only
    chain = sampler.run(state.bank[drawn], steps=cfg.langevin_steps, seed=chain_seed(cfg.seed, state.step),
                        row_ids=drawn.cpu().numpy())
    samples = chain.snapshots[cfg.langevin_steps]
    state.model.requires_grad_(True)
    state.bank[drawn] = torch.where(reset[:, None, None, None], positive[:len(drawn)], samples)
    state.model.train()
    energy_data = state.model(positive).mean()
    energy_samples = state.model(samples).mean()
    loss = (energy_data - energy_samples) / cfg.temperature
    if not torch.isfinite(loss):
        raise TrainingDivergedError(f"EBM loss is {loss.item()} at iteration {state.step}; lower lr or step_size")
    lr = learning_rate(cfg, state.step)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.step += 1
    return {"energy_data": energy_data.item(), "energy_samples": energy_samples.item(),
            "energy_diff": (energy_data - energy_samples).item(), "grad_norm": chain.mean_grad_norm,
            "loss": loss.item(), "lr": lr}


def save_state(path: Path, cfg: EbmTrainConfig, state: TrainState, run_id: str) -> Path:
    """Write a training checkpoint (weights, Adam state, bank as safetensors; step, run id, config in JSON)."""
    optim_tensors, optim_json = optimizer_tensors(state.optimizer)
    return save_checkpoint(path, kind=STATE_KIND, config=cfg,
                           tensors={"model": state.model.state_dict(), "optimizer": optim_tensors, "bank": {"bank": state.bank}},
                           meta={"step": state.step, "mlflow_run_id": run_id, "optimizer": optim_json})


def load_state(path: Path, cfg: EbmTrainConfig, device: torch.device) -> tuple[TrainState, str]:
    """Return (state, MLflow run id) from a training checkpoint written with the same config."""
    tensors, index = load_checkpoint(path, kind=STATE_KIND, device=device, expected_config=cfg)
    model = build_ebm(cfg.model).to(device)
    load_state_into(model, tensors["model"], path)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    restore_optimizer(optimizer, tensors["optimizer"], index["meta"]["optimizer"])
    bank = tensors["bank"]["bank"]
    if bank.shape[0] != cfg.bank_size:
        raise CheckpointError(f"{path}: bank holds {bank.shape[0]} states, config says {cfg.bank_size}")
    return TrainState(model, optimizer, bank, int(index["meta"]["step"])), str(index["meta"]["mlflow_run_id"])


def latest_checkpoint(out_dir: Path) -> Path | None:
    """Return the checkpoint the `LATEST` pointer of `out_dir/checkpoints` names, or None."""
    pointer = out_dir / "checkpoints" / "LATEST"
    if not pointer.is_file():
        return None
    path = out_dir / "checkpoints" / pointer.read_text().strip()
    read_checkpoint_index(path, kind=STATE_KIND)
    return path


def _checkpoint(out_dir: Path, cfg: EbmTrainConfig, state: TrainState, run_id: str) -> Path:
    """Save `step-NNNNNNN`, point `LATEST` at it, then delete older step checkpoints and stale temp dirs."""
    root = out_dir / "checkpoints"
    name = f"step-{state.step:07d}"
    save_state(root / name, cfg, state, run_id)
    write_text_atomic(root / "LATEST", name + "\n")
    for old in [*root.glob("step-*"), *root.glob(".step-*")]:  # older steps; temp dirs of killed writers
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return root / name


def _log_grids(client: MlflowClient, run_id: str, cfg: EbmTrainConfig, state: TrainState, sampler: LangevinSampler,
               preview: np.ndarray) -> None:
    """Log a grid of chain states and one of training images before/after Psi_T (T = purify_steps)."""
    device = state.bank.device
    state.model.eval()
    count = min(cfg.grid_size, len(preview))
    purified = sampler.run(to_unit_range(preview[:count], device), steps=cfg.purify_steps, seed=cfg.seed,
                           row_ids=np.arange(count)).snapshots[cfg.purify_steps]
    with tempfile.TemporaryDirectory() as tmp:
        samples = save_image_grid([to_pixels(state.bank[i * cfg.grid_size:(i + 1) * cfg.grid_size]) for i in range(2)],
                                  ["bank", "bank"], Path(tmp) / f"samples-{state.step:07d}.png")
        client.log_artifact(run_id, str(samples), "samples")
        before_after = save_image_grid([preview[:count], to_pixels(purified)], ["train", f"ebm-T{cfg.purify_steps}"],
                                       Path(tmp) / f"purified-{state.step:07d}.png")
        client.log_artifact(run_id, str(before_after), "purified")


def train_ebm(cfg: EbmTrainConfig, ebm_train: ImageSet, preview: np.ndarray, out_dir: Path, *,
              registered_name: str | None, params: dict[str, str] | None = None) -> EbmTrainResult:
    """Train (or resume training) an EBM on `ebm_train`; checkpoint to `out_dir`; log to MLflow; register it.

    `preview`: uint8 NHWC training images of the dataset to purify, shown purified in the grids.
    Resumes from `out_dir/checkpoints/LATEST` when present (its config must equal `cfg`, else
    `CheckpointError`). The final EBM is written to `out_dir/model` (kind `ebm`), logged as the
    run's `ebm/` artifacts and, if `cfg.register_model`, registered as `registered_name`;
    `out_dir/finished.json` then records the run and version, and a rerun returns it unchanged.
    """
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    data = to_unit_range(ebm_train.images, device)
    client = MlflowClient(tracking_uri())
    exp_id = experiment_id(cfg.experiment)
    found = latest_checkpoint(out_dir)
    done = out_dir / "finished.json"
    if found is not None and done.is_file():
        record = json.loads(done.read_text())
        if record["iterations"] == cfg.iterations:
            print(f"[genlab] {out_dir} already holds the finished run; nothing to do")
            return EbmTrainResult(out_dir / "model", record["run_id"], record["name"], record["version"], cfg.iterations)
    if found is not None:
        state, run_id = load_state(found, cfg, device)
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, "genlab.resumed_from", str(state.step))
        print(f"[genlab] resuming EBM training from {found} (iteration {state.step})")
    else:
        state = init_state(cfg, data)
        source = f"-from-{cfg.train_dataset.name}" if cfg.train_dataset else ""
        run_name = f"ebm-{cfg.dataset.name}{source}-seed{cfg.seed}"
        run_id = client.create_run(exp_id, run_name=run_name,
                                   tags=standard_tags(dataset_hash=ebm_train.hash, seed=cfg.seed)).info.run_id
        log_params(client, run_id, params or params_for(cfg))
    resumed_from = state.step
    sampler = LangevinSampler(state.model, step_size=cfg.step_size, temperature=cfg.temperature)
    try:
        while state.step < cfg.iterations:
            metrics = train_step(cfg, state, data, sampler)
            if state.step % cfg.log_every == 0 or state.step == cfg.iterations:
                metrics["gradient_evaluations"] = float(sampler.gradient_evaluations)
                client.log_batch(run_id, metrics=[_metric(k, v, state.step) for k, v in metrics.items()])
                print(f"[genlab] ebm iteration {state.step}/{cfg.iterations} " +
                      " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
            if state.step % (4 * cfg.log_every) == 0 or state.step == cfg.iterations:
                _log_grids(client, run_id, cfg, state, sampler, preview)
            if state.step % cfg.checkpoint_every == 0 or state.step == cfg.iterations:
                _checkpoint(out_dir, cfg, state, run_id)
        state.model.eval()
        model_dir = save_model(out_dir / "model", state.model, kind=MODEL_KIND,
                               meta={"trained_on": ebm_train.hash, "iterations": state.step,
                                     "step_size": cfg.step_size, "temperature": cfg.temperature,
                                     "mlflow_run_id": run_id})
        log_checkpoint_artifacts(client, run_id, model_dir, MODEL_ARTIFACT)
        version = None
        if cfg.register_model and registered_name is not None:
            version = register_checkpoint(client, run_id, MODEL_ARTIFACT, registered_name,
                                          tags={"purifies": cfg.dataset.name,
                                                "trained_on": (cfg.train_dataset or cfg.dataset).name,
                                                "config": json.dumps(cfg.model.model_dump(mode="json"))})
            print(f"[genlab] registered {registered_name} version {version}")
        write_json_atomic(done, {"run_id": run_id, "name": registered_name if version else None, "version": version,
                                 "iterations": state.step})
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    return EbmTrainResult(model_dir, run_id, registered_name if version else None, version, resumed_from)


def _metric(key: str, value: float, step: int) -> mlflow.entities.Metric:
    return mlflow.entities.Metric(key, float(value), int(time.time() * 1000), step)
