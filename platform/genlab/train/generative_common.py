"""What the generative-model training loops (EBM, DDPM) share: their training data, resumable
checkpoints, per-iteration random draws, and the MLflow run from start (or resume) to registered model.

- Data: the model learns from the training set of the dataset to purify, or, by one config switch
  each, from another dataset (`train_dataset`: a distribution shift, resized and recoloured to
  the purified dataset's format) or from a poisoned copy (`poison`: an attack's crafted rows
  replace their clean rows), as in the papers' robustness studies (spec puregen.md §12).
- Checkpoints: `<out_dir>/checkpoints/step-NNNNNNN` (genlab checkpoint directories) and a
  `LATEST` pointer, written after the checkpoint is complete; older steps are deleted.
- Random draws of iteration i come from a generator seeded by (seed, i), so a resumed run
  continues exactly as the uninterrupted run would have.
- MLflow: a run is created on a fresh start and re-opened on resume (its id is in the training
  checkpoint); the final model is logged as run artifacts and registered.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import mlflow
import torch
from mlflow.tracking import MlflowClient

from genlab.attacks import craft_poisons
from genlab.checkpoints import log_checkpoint_artifacts, read_checkpoint_index, register_checkpoint
from genlab.data import DatasetConfig, ImageSet, load_dataset
from genlab.fileio import write_text_atomic
from genlab.tracking import experiment_id, log_params, standard_tags
from genlab.train.ebm import match_format


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
    return source, purify_train


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
    """Write checkpoint `step-NNNNNNN` with `write(path)`, point `LATEST` at it, then delete older steps."""
    root = Path(out_dir) / "checkpoints"
    name = f"step-{step:07d}"
    write(root / name)
    write_text_atomic(root / "LATEST", name + "\n")
    for old in root.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return root / name


def start_run(client: MlflowClient, *, experiment: str, run_name: str, dataset_hash: str, seed: int,
              params: dict[str, str]) -> str:
    """Create a run (standard tags, params) in `experiment`; return its id."""
    run_id = client.create_run(experiment_id(experiment), run_name=run_name,
                               tags=standard_tags(dataset_hash=dataset_hash, seed=seed)).info.run_id
    log_params(client, run_id, params)
    return run_id


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int) -> None:
    """Log `metrics` at `step` in one request."""
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[mlflow.entities.Metric(k, float(v), now, step) for k, v in metrics.items()])


def publish_model(client: MlflowClient, run_id: str, model_dir: Path, artifact_path: str,
                  registered_name: str | None, tags: dict[str, str]) -> str | None:
    """Log the final model directory as run artifacts and, if `registered_name`, register it; return the version."""
    log_checkpoint_artifacts(client, run_id, model_dir, artifact_path)
    if registered_name is None:
        return None
    version = register_checkpoint(client, run_id, artifact_path, registered_name, tags=tags)
    print(f"[genlab] registered {registered_name} version {version}")
    return version

