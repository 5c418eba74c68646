"""What the generative-model training loops (EBM, DDPM) share: their training data, resumable
checkpoints, per-iteration random draws, and the MLflow run from start (or resume) to registered model.

- Data (`generative_training_set`): the model learns from the training set of the dataset to
  purify or, by one config switch each, from another dataset (`train_dataset`: a distribution
  shift, resized and recoloured to the purified dataset's format) or from a poisoned copy
  (`poison`: an attack's crafted rows replace their clean rows), as in the papers' robustness
  studies (spec puregen.md §12). `registry_name` names the result accordingly.
- The driver (`train_generative`) runs a `GenerativeTrainer` (one model family's state, step,
  grids and checkpoints) for `cfg.iterations` iterations: metrics to MLflow every `log_every`,
  grids every 4x that, a checkpoint every `checkpoint_every` (`<out_dir>/checkpoints/step-NNNNNNN`
  plus a `LATEST` pointer written after the checkpoint is complete; older steps and temp dirs of
  killed writers are deleted). Started again on the same `out_dir`, it resumes from `LATEST`
  (same MLflow run, tag `genlab.resumed_from`); once finished, `finished.json` makes a rerun a
  no-op. The final model goes to `<out_dir>/model`, the run's artifacts and the model registry.
- Random draws of iteration i come from `iteration_generator(seed, i)`, so a resumed run
  continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import mlflow
import torch
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from genlab.attacks import craft_poisons
from genlab.checkpoints import read_checkpoint_index, save_model
from genlab.tracking import log_checkpoint_artifacts, register_checkpoint
from genlab.data import DatasetConfig, ImageSet, load_dataset
from genlab.data.convert import match_format
from genlab.fileio import write_json_atomic, write_text_atomic
from genlab.tracking import experiment_id, log_params, params_for, standard_tags, tracking_uri

FINISHED = "finished.json"
StateT = TypeVar("StateT")


def generative_training_set(dataset: DatasetConfig, train_dataset: DatasetConfig | None, poison: Any | None,
                            seed: int) -> tuple[ImageSet, ImageSet]:
    """Return (the generative model's training set, the clean training set of the dataset to purify).

    `train_dataset` (or None = `dataset`) is converted to `dataset`'s image format; `poison` (an
    `AttackConfig` or None) is crafted against it with `seed` and its rows replace the clean ones.
    """
    purify_train, _ = load_dataset(dataset)
    source = purify_train
    if train_dataset is not None:
        other, _ = load_dataset(train_dataset)
        source = ImageSet(match_format(other.images, purify_train.shape), other.labels, other.classes)
    if poison is not None:
        crafted = craft_poisons(poison, source, seed)
        source = source.replace_rows(crafted.base_indices, crafted.images, crafted.labels)
        print(f"[genlab] training set poisoned by {poison.name}: {len(crafted.base_indices)} rows")
    return source, purify_train


def registry_name(family: str, dataset: DatasetConfig, train_dataset: DatasetConfig | None, poison: Any | None) -> str:
    """Return `genlab-<family>-<training dataset>`, plus `-poisoned-<attack>` for poisoned training data."""
    name = f"genlab-{family}-{(train_dataset or dataset).name}"
    return f"{name}-poisoned-{poison.name}" if poison is not None else name


def default_out_dir(job: str, name: str, cfg: BaseModel) -> Path:
    """Return `out/<job>/<name>-<config hash>`: the same config resumes in the same place, another one does not collide."""
    key = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]
    return Path("out") / job / f"{name}-{key}"


def iteration_generator(seed: int, step: int) -> torch.Generator:
    """Return the CPU generator for the random draws of iteration `step`, seeded by (seed, step)."""
    key = hashlib.sha256(f"{seed}:{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little") & ((1 << 63) - 1))


def latest_checkpoint(out_dir: Path, kind: str) -> Path | None:
    """Return the training checkpoint `out_dir/checkpoints/LATEST` names (checked to hold `kind`), or None."""
    pointer = Path(out_dir) / "checkpoints" / "LATEST"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    read_checkpoint_index(path, kind=kind)
    return path


def rotate_checkpoint(out_dir: Path, step: int, write: Callable[[Path], Path]) -> Path:
    """Write checkpoint `step-NNNNNNN` with `write(path)`, point `LATEST` at it, then delete older steps and stale temp dirs."""
    root = Path(out_dir) / "checkpoints"
    name = f"step-{step:07d}"
    write(root / name)
    write_text_atomic(root / "LATEST", name + "\n")
    for old in [*root.glob("step-*"), *root.glob(".step-*")]:  # older steps; temp dirs of killed writers
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return root / name


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int) -> None:
    """Log `metrics` at `step` in one request."""
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[mlflow.entities.Metric(k, float(v), now, step) for k, v in metrics.items()])


class GenerativeTrainer(ABC, Generic[StateT]):
    """One model family's training as `train_generative` runs it; the state has `.model` and `.step`.

    `cfg` must have `experiment`, `seed`, `iterations`, `log_every`, `checkpoint_every` and
    `register_model`; `family` names the registry (`genlab-<family>-...`), `state_kind` and
    `model_kind` the checkpoint kinds (the final model is logged under the artifact path `model_kind`).
    """

    family: str
    state_kind: str
    model_kind: str

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    @abstractmethod
    def init_state(self) -> StateT:
        """Return a fresh state (seeded weights and optimizer, step 0)."""

    @abstractmethod
    def load_state(self, path: Path) -> tuple[StateT, str]:
        """Return (state, MLflow run id) from a training checkpoint written with the same config."""

    @abstractmethod
    def save_state(self, path: Path, state: StateT, run_id: str) -> Path:
        """Write a training checkpoint of `state` (kind `state_kind`) to `path`."""

    @abstractmethod
    def train_step(self, state: StateT) -> dict[str, float]:
        """Run one iteration in place (incrementing `state.step`); return its metrics."""

    @abstractmethod
    def log_grids(self, client: MlflowClient, run_id: str, state: StateT) -> None:
        """Log image grids (and any metrics computed from them) for the current state."""

    def model_meta(self) -> dict[str, Any]:
        """Return extra JSON values stored with the final model (sampler settings ...)."""
        return {}


@dataclass(frozen=True)
class GenerativeTrainResult:
    """Where a finished training run put its outputs."""

    model_dir: Path  # checkpoint directory of the final model (kind `model_kind`)
    run_id: str  # MLflow run
    registered_name: str | None  # registry name (None if not registered)
    registered_version: str | None  # registry version
    resumed_from: int  # iteration the run resumed from (0 = fresh start; `iterations` = already finished)


def train_generative(trainer: GenerativeTrainer, out_dir: Path, *, run_name: str, registered_name: str | None,
                     dataset_hash: str) -> GenerativeTrainResult:
    """Train (or resume, or return the finished run in) `out_dir` with `trainer`; see the module docstring.

    Raises `CheckpointError` if `out_dir` holds a checkpoint written with another config. An
    exception (or Ctrl-C) marks the MLflow run FAILED (KILLED) and propagates.
    """
    cfg, out_dir = trainer.cfg, Path(out_dir)
    client = MlflowClient(tracking_uri())
    found = latest_checkpoint(out_dir, trainer.state_kind)
    if found is not None and (out_dir / FINISHED).is_file():
        record = json.loads((out_dir / FINISHED).read_text())
        if record["iterations"] == cfg.iterations:
            print(f"[genlab] {out_dir} already holds the finished run; nothing to do")
            return GenerativeTrainResult(out_dir / "model", record["run_id"], record["name"], record["version"],
                                         cfg.iterations)
    if found is not None:
        state, run_id = trainer.load_state(found)
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, "genlab.resumed_from", str(state.step))
        print(f"[genlab] resuming {trainer.family} training from {found} (iteration {state.step})")
    else:
        state = trainer.init_state()
        run_id = client.create_run(experiment_id(cfg.experiment), run_name=run_name,
                                   tags=standard_tags(dataset_hash=dataset_hash, seed=cfg.seed)).info.run_id
        log_params(client, run_id, params_for(cfg))
    resumed_from = state.step
    try:
        while state.step < cfg.iterations:
            metrics = trainer.train_step(state)
            last = state.step == cfg.iterations
            if state.step % cfg.log_every == 0 or last:
                log_metrics(client, run_id, metrics, state.step)
                print(f"[genlab] {trainer.family} iteration {state.step}/{cfg.iterations} " +
                      " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
            if state.step % (4 * cfg.log_every) == 0 or last:
                trainer.log_grids(client, run_id, state)
            if state.step % cfg.checkpoint_every == 0 or last:
                rotate_checkpoint(out_dir, state.step, lambda path: trainer.save_state(path, state, run_id))
        state.model.eval()
        model_dir = save_model(out_dir / "model", state.model, kind=trainer.model_kind,
                               meta={"trained_on": dataset_hash, "iterations": state.step, "mlflow_run_id": run_id,
                                     **trainer.model_meta()})
        log_checkpoint_artifacts(client, run_id, model_dir, trainer.model_kind)
        name = registered_name if cfg.register_model else None
        version = None
        if name is not None:
            version = register_checkpoint(client, run_id, trainer.model_kind, name,
                                          tags={"kind": trainer.model_kind, "trained_on": dataset_hash})
            print(f"[genlab] registered {name} version {version}")
        write_json_atomic(out_dir / FINISHED, {"run_id": run_id, "name": name, "version": version,
                                               "iterations": state.step})
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    return GenerativeTrainResult(model_dir, run_id, name, version, resumed_from)
