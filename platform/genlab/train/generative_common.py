"""What the generative-model training loops (EBM, DDPM) share: resumable checkpoints, the optimizer step,
and the MLflow run from start (or resume) to registered model.

- The driver (`train_generative`) runs a `GenerativeTrainer` (one model family's state, step,
  grids and checkpoints) for `cfg.iterations` iterations: metrics to MLflow every `log_every`,
  grids every 4x that, a checkpoint every `checkpoint_every` (`<out_dir>/checkpoints/step-NNNNNNN`
  plus a `LATEST` pointer written after the checkpoint is complete; older steps and temp dirs of
  killed writers are deleted). Started again on the same `out_dir`, it resumes from `LATEST`
  (same MLflow run, tag `genlab.resumed_from`; when that run is not in the current MLflow store,
  a new run there tagged `genlab.resumed_run_id`); once finished, `finished.json` makes a rerun a
  no-op. One process at a time trains into an `out_dir` (a file lock beside it): a second one,
  e.g. a concurrent sweep with the same model key, waits and then finds the model finished. The final model goes to `<out_dir>/model`, the run's artifacts and the model registry.
  The run is a `genlab.tracking.tracked_run`: FINISHED at the end, FAILED on an error, KILLED on
  Ctrl-C or SIGTERM.
- Random draws of iteration i come from `genlab.runtime.seeded_generator(seed, i, bits=63)`, so a
  resumed run continues exactly as the uninterrupted run would have.
- Which images a model learns from (clean, shifted or poisoned) is the caller's choice
  (`genlab.sweep.provisioning`).
"""

from __future__ import annotations

import json
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import torch
from filelock import Timeout
from mlflow.tracking import MlflowClient

from genlab.checkpoints import read_checkpoint_index, save_model
from genlab.errors import TrainingDivergedError
from genlab.fileio import path_lock, write_json_atomic, write_text_atomic
from genlab.tracking import log_checkpoint_artifacts, register_checkpoint, tracked_run

FINISHED = "finished.json"
StateT = TypeVar("StateT")


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


class GenerativeTrainer(ABC, Generic[StateT]):
    """One model family's training as `train_generative` runs it; the state has `.model`, `.optimizer` and `.step`.

    `cfg` must have `experiment`, `seed`, `iterations`, `log_every`, `checkpoint_every` and
    `register_model`; `family` names the model family (`ebm`, `ddpm`), `state_kind` and
    `model_kind` the checkpoint kinds (the final model is logged under the artifact path
    `model_kind`), `divergence_hint` what to change when the loss diverges.
    """

    family: str
    state_kind: str
    model_kind: str
    divergence_hint: str

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

    def optimizer_step(self, state: StateT, loss: torch.Tensor, lr: float) -> None:
        """Take one optimizer step on `loss` at learning rate `lr` and count the iteration (`state.step` + 1).

        Raises `TrainingDivergedError` (naming `divergence_hint`) if the loss is not finite.
        """
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"{self.family.upper()} loss is {loss.item()} at iteration {state.step}; "
                                        f"{self.divergence_hint}")
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.step += 1


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
    lock = path_lock(Path(out_dir))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"[genlab] another process is training into {out_dir}; waiting for it", flush=True)
        lock.acquire()
    try:
        return _train_locked(trainer, Path(out_dir), run_name=run_name, registered_name=registered_name,
                             dataset_hash=dataset_hash)
    finally:
        lock.release()


def _train_locked(trainer: GenerativeTrainer, out_dir: Path, *, run_name: str, registered_name: str | None,
                  dataset_hash: str) -> GenerativeTrainResult:
    """`train_generative` once this process holds the lock of `out_dir`."""
    cfg = trainer.cfg
    found = latest_checkpoint(out_dir, trainer.state_kind)
    if found is not None and (out_dir / FINISHED).is_file():
        record = json.loads((out_dir / FINISHED).read_text())
        if record["iterations"] == cfg.iterations:
            print(f"[genlab] {out_dir} already holds the finished run; nothing to do")
            return GenerativeTrainResult(out_dir / "model", record["run_id"], record["name"], record["version"],
                                         cfg.iterations)
    resume_run_id = None
    if found is not None:
        state, resume_run_id = trainer.load_state(found)
    else:
        state = trainer.init_state()
    resumed_from = state.step
    with tracked_run(cfg.experiment, run_name=run_name, config=cfg, seed=cfg.seed, dataset_hash=dataset_hash,
                     resume_run_id=resume_run_id) as run:
        if found is not None:
            run.client.set_tag(run.run_id, "genlab.resumed_from", str(state.step))
            print(f"[genlab] resuming {trainer.family} training from {found} (iteration {state.step})")
        while state.step < cfg.iterations:
            metrics = trainer.train_step(state)
            last = state.step == cfg.iterations
            if state.step % cfg.log_every == 0 or last:
                run.log_metrics(metrics, state.step)
                print(f"[genlab] {trainer.family} iteration {state.step}/{cfg.iterations} " +
                      " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
            if state.step % (4 * cfg.log_every) == 0 or last:
                trainer.log_grids(run.client, run.run_id, state)
            if state.step % cfg.checkpoint_every == 0 or last:
                rotate_checkpoint(out_dir, state.step, lambda path: trainer.save_state(path, state, run.run_id))
        state.model.eval()
        model_dir = save_model(out_dir / "model", state.model, kind=trainer.model_kind,
                               meta={"trained_on": dataset_hash, "iterations": state.step, "mlflow_run_id": run.run_id,
                                     **trainer.model_meta()})
        log_checkpoint_artifacts(run.client, run.run_id, model_dir, trainer.model_kind)
        name = registered_name if cfg.register_model else None
        version = None
        if name is not None:
            version = register_checkpoint(run.client, run.run_id, trainer.model_kind, name,
                                          tags={"kind": trainer.model_kind, "trained_on": dataset_hash})
            print(f"[genlab] registered {name} version {version}")
        write_json_atomic(out_dir / FINISHED, {"run_id": run.run_id, "name": name, "version": version,
                                               "iterations": state.step})
    return GenerativeTrainResult(model_dir, run.run_id, name, version, resumed_from)
