"""Generative models a sweep needs, trained on first use and cached.

A generative purifier setting that names no model (`checkpoint` and `registered_model` unset)
gets one trained with the job config in `SweepConfig.model_training` (the embedded default:
small CPU settings), on the sweep's own dataset. The checkpoint lands in
`<work_dir>/models/<kind>-<key>` (key: the training config and the dataset hash); a second
sweep finds it finished there and skips training. The run is logged to MLflow and the model
registered as `genlab-<kind>-<dataset>`, as `jobs/train_<kind>.py` does. `train_missing_models`
trains every missing kind at once, one Ray task (one CPU) each, before purification starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import ray
import torch

from genlab.tracking import resolve_registered_checkpoint
from genlab.config import StrictModel, load_yaml, validate
from genlab.data.imageset import ImageSet
from genlab.purify.ddpm import DdpmSettings
from genlab.purify.ebm import EbmSettings
from genlab.purify.puregen import EnergyModelSettings
from genlab.train.ddpm import DdpmTrainConfig, train_ddpm
from genlab.tracking import tracking_uri
from genlab.train.ebm import EbmTrainConfig, train_ebm


def _training_config(model_cls: type[StrictModel], config_path: str) -> Any:
    """Return the job config at `config_path` as `model_cls`, without the job-level `poison` switch."""
    data = load_yaml(config_path)
    data.pop("poison", None)  # the sweep's models learn from its clean training set
    return validate(model_cls, data)


def _train_ebm(config_path: str, sweep_dataset: Any, train: ImageSet, out_dir: Path) -> Path:
    cfg = _training_config(EbmTrainConfig, config_path)
    cfg = cfg.model_copy(update={"dataset": sweep_dataset,
                                 "model": cfg.model.model_copy(update={"channels": train.shape[2]})})
    return _cached(cfg, train, out_dir, lambda c, d: train_ebm(
        c, train, train.images, d, registered_name=f"genlab-ebm-{sweep_dataset.name}").model_dir, "ebm")


def _train_ddpm(config_path: str, sweep_dataset: Any, train: ImageSet, out_dir: Path) -> Path:
    cfg = _training_config(DdpmTrainConfig, config_path)
    model = cfg.model.model_copy(update={"sample_size": train.shape[0], "channels": train.shape[2]})
    cfg = cfg.model_copy(update={"dataset": sweep_dataset, "model": model})
    return _cached(cfg, train, out_dir, lambda c, d: train_ddpm(c, train, train.images, d).model_dir, "ddpm")


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Train with one torch thread, as the training jobs do in the tests: the small EBM recipe is
    sensitive to float reduction order, and one thread makes the sweep's model the tested one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _cached(cfg: StrictModel, train: ImageSet, out_dir: Path, train_fn: Callable[[Any, Path], Path], kind: str) -> Path:
    key = hashlib.sha256(json.dumps({"config": cfg.model_dump(mode="json"), "data": train.hash},
                                    sort_keys=True).encode()).hexdigest()[:16]
    target = out_dir / f"{kind}-{key}"
    if not (target / "finished.json").is_file():
        print(f"[genlab] no {kind} model given: training one with small settings into {target} (once; cached)")
    with _single_thread():
        return train_fn(cfg, target)


TRAINERS: dict[type[StrictModel], tuple[str, Callable[[str, Any, ImageSet, Path], Path]]] = {
    EbmSettings: ("ebm", _train_ebm),
    EnergyModelSettings: ("ebm", _train_ebm),
    DdpmSettings: ("ddpm", _train_ddpm),
}
TRAINER_OF_KIND = dict(TRAINERS.values())


def untrained_kinds(settings: StrictModel) -> set[str]:
    """Return the model kinds (`ebm`, `ddpm`) that `settings` or a setting nested in it needs trained."""
    kinds: set[str] = set()
    for name in type(settings).model_fields:
        if isinstance(value := getattr(settings, name), StrictModel):
            kinds |= untrained_kinds(value)
    entry = TRAINERS.get(type(settings))
    if entry is not None and settings.checkpoint is None and settings.registered_model is None:
        kinds.add(entry[0])
    return kinds


@ray.remote(num_cpus=1)
def _train_kind_task(kind: str, config_path: str, sweep_dataset: Any, train: ImageSet, work_dir: str,
                     uri: str) -> str:
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return str(TRAINER_OF_KIND[kind](config_path, sweep_dataset, train, Path(work_dir) / "models"))


def train_missing_models(all_settings: list[StrictModel], model_training: dict[str, str], sweep_dataset: Any,
                         train: ImageSet, work_dir: Path) -> list[str]:
    """Train every model kind the settings need but lack, concurrently as Ray tasks; return the kinds trained.

    Each task trains one kind with one torch thread into the same cache `provide_models` reads,
    so the sequential pass that follows finds the models finished and only resolves paths.
    """
    kinds = sorted(set().union(*(untrained_kinds(s) for s in all_settings)))
    if len(kinds) < 2:
        return []  # nothing to overlap: provide_models trains a single kind in place
    print(f"[genlab] training {', '.join(kinds)} models in parallel (Ray tasks, once; cached)")
    uri = tracking_uri()
    train_ref = ray.put(train)
    ray.get([_train_kind_task.remote(kind, str(Path(model_training[kind]).resolve()), sweep_dataset, train_ref,
                                     str(work_dir), uri) for kind in kinds])
    return kinds


def provide_models(settings: StrictModel, model_training: dict[str, str], sweep_dataset: Any, train: ImageSet,
                   work_dir: Path) -> Any:
    """Return `settings` (and every model setting nested in it) with a local checkpoint.

    A registered model is resolved here, on the driver (Ray actors may not see the tracking
    store); a model setting without a model gets one trained on first use. PureGen
    combinations hold EBM and DDPM settings, and each is provided for in the same way.
    """
    nested = {name: provide_models(value, model_training, sweep_dataset, train, work_dir)
              for name in type(settings).model_fields if isinstance(value := getattr(settings, name), StrictModel)}
    changed = {name: value for name, value in nested.items() if value is not getattr(settings, name)}
    if changed:
        settings = settings.model_copy(update=changed)
    entry = TRAINERS.get(type(settings))
    if entry is None or settings.checkpoint is not None:
        return settings
    if settings.registered_model is not None:
        path = resolve_registered_checkpoint(settings.registered_model, settings.model_version)
        return settings.model_copy(update={"checkpoint": str(path), "registered_model": None, "model_version": None})
    kind, trainer = entry
    return settings.model_copy(update={"checkpoint": str(trainer(model_training[kind], sweep_dataset, train,
                                                                 work_dir / "models"))})
