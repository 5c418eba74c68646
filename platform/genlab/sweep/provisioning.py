"""The generative models (EBM, DDPM) purifiers use: what each learns from, and training one for a job
or, on first use, for a sweep.

- The jobs' configs (`EbmJobConfig`, `DdpmJobConfig`; conf/train_ebm*.yaml, conf/train_ddpm*.yaml)
  are genlab.train's training configs plus the data switches (`TrainingData`): the model learns
  from the training set of the dataset to purify (`dataset`) or, by one switch each, from another
  dataset (`train_dataset`: a distribution shift, resized and recoloured to `dataset`'s format) or
  from a poisoned copy (`poison`: an attack's crafted rows replace their clean rows), as in the
  papers' robustness studies (spec puregen.md §12). The registry name says which.
  `run_training_job` is all of jobs/train_ebm.py and jobs/train_ddpm.py.
- A sweep's generative purifier setting that names no model (`checkpoint` and `registered_model`
  unset) gets one trained with the job config in `SweepConfig.model_training` (the embedded
  default: small CPU settings), on the rows `genlab.sweep.generative_data` chooses (by default the
  pool split's generative rows, disjoint from the classifier's). The checkpoint lands in
  `<work_dir>/models/<kind>-<key>` (key: the training config and the dataset hash); a second
  sweep finds it finished there and skips training. The run is logged to MLflow and the model
  registered as `genlab-<kind>-<dataset>`, as `jobs/train_<kind>.py` does. `train_missing_models`
  trains every missing kind at once, one Ray task (one CPU) each, before purification starts.
- `cap_model_caches` keeps `<work_dir>/models` and the registered-model download cache under a size
  cap (`SweepConfig.model_cache_max_gb`), evicting the least recently used models other than the
  sweep's own (`genlab.cache_cap`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import ray
from pydantic import BaseModel, Field

from genlab.attacks import AttackConfig, craft_poisons
from genlab.cache_cap import evict_least_recently_used, mark_used
from genlab.checkpoints import INDEX
from genlab.cli import parse_job_args
from genlab.config import StrictModel, load_config, load_yaml, validate
from genlab.data import DatasetConfig, ImageSet, load_dataset
from genlab.data.convert import match_format
from genlab.purify.ddpm import DdpmSettings
from genlab.purify.ebm import EbmSettings
from genlab.purify.model_source import model_sources
from genlab.purify.puregen import EnergyModelSettings
from genlab.runtime import one_torch_thread
from genlab.tracking import model_cache_root, resolve_registered_checkpoint, tracking_uri, ui_command
from genlab.train.ddpm import DdpmTrainConfig, train_ddpm
from genlab.train.ebm import EbmTrainConfig, train_ebm
from genlab.train.generative_common import FINISHED, GenerativeTrainResult
from genlab.workspace import in_workspace


class TrainingData(StrictModel):
    """The data switches of a generative training job: which images the model learns from."""

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)  # the dataset to purify (its format; the grids)
    train_dataset: DatasetConfig | None = None  # learn from this dataset instead (resized/recoloured to `dataset`'s format); None = dataset
    poison: AttackConfig | None = None  # learn from a poisoned copy: this attack's crafted rows (seed `seed`) replace their clean rows


class EbmJobConfig(EbmTrainConfig, TrainingData):
    """jobs/train_ebm.py's config (conf/train_ebm*.yaml): the EBM training and the data it learns from."""

    family: ClassVar[str] = "ebm"

    def registry_name(self) -> str:
        """Return `genlab-ebm-<dataset>`, plus `-from-<train dataset>` and `-poisoned-<attack>` for the two switches."""
        name = f"genlab-ebm-{self.dataset.name}" + (f"-from-{self.train_dataset.name}" if self.train_dataset else "")
        return f"{name}-poisoned-{self.poison.name}" if self.poison is not None else name

    def run_name(self) -> str:
        """Return the MLflow run name `ebm-<dataset>[-from-<train dataset>]-seed<seed>`."""
        source = f"-from-{self.train_dataset.name}" if self.train_dataset else ""
        return f"ebm-{self.dataset.name}{source}-seed{self.seed}"


class DdpmJobConfig(DdpmTrainConfig, TrainingData):
    """jobs/train_ddpm.py's config (conf/train_ddpm*.yaml): the DDPM training, the data it learns from, its name."""

    family: ClassVar[str] = "ddpm"
    registered_name: str | None = None  # registry name; None = genlab-ddpm-<training data>[-poisoned-<attack>]

    def registry_name(self) -> str:
        """Return `registered_name`, else `genlab-ddpm-<training dataset>`, plus `-poisoned-<attack>` for poisoned data."""
        name = f"genlab-ddpm-{(self.train_dataset or self.dataset).name}"
        default = f"{name}-poisoned-{self.poison.name}" if self.poison is not None else name
        return self.registered_name or default

    def run_name(self) -> str:
        """Return the MLflow run name: the registry name without `genlab-`, then `-seed<seed>`."""
        return f"{self.registry_name().removeprefix('genlab-')}-seed{self.seed}"


TRAIN_FUNCTIONS: dict[str, Callable[..., GenerativeTrainResult]] = {"ebm": train_ebm, "ddpm": train_ddpm}


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


def default_out_dir(job: str, name: str, cfg: BaseModel) -> Path:
    """Return `<workspace>/out/<job>/<name>-<config hash>` (`genlab.workspace`): the same config resumes in the same
    place, another one does not collide."""
    key = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]
    return in_workspace("out") / job / f"{name}-{key}"


def run_training_job(config_cls: type[EbmJobConfig] | type[DdpmJobConfig], doc: str, *, default_config: str) -> int:
    """Run jobs/train_<family>.py (`doc`: its docstring) from the command line; return the exit code 0.

    Reads `--config` (default `default_config`), `--out` and `key=value` overrides; trains (or
    resumes, or finds finished) the model on the training set the data switches name, in `--out`
    (default `out/train_<family>/<registry name>-<config hash>`), and registers it.
    """
    args = parse_job_args(doc.splitlines()[0], default_config=default_config)
    cfg = load_config(config_cls, args.config, args.overrides)
    train_set, purify_train = generative_training_set(cfg.dataset, cfg.train_dataset, cfg.poison, cfg.seed)
    out_dir = args.out or default_out_dir(f"train_{cfg.family}", cfg.registry_name(), cfg)
    label = cfg.family.upper()
    print(f"[genlab] {label} training on {len(train_set)} images {train_set.shape}; checkpoints in {out_dir}")
    result = TRAIN_FUNCTIONS[cfg.family](cfg, train_set, purify_train.images, out_dir, run_name=cfg.run_name(),
                                         registered_name=cfg.registry_name())
    print(f"[genlab] {label} saved to {result.model_dir}" +
          (f"; registered {result.registered_name} version {result.registered_version}" if result.registered_version else ""))
    print(f"[genlab] MLflow: {ui_command()}")
    return 0


def _training_config(model_cls: type[StrictModel], config_path: str) -> Any:
    """Return the job config at `config_path` as `model_cls`, without the job-level `poison` switch."""
    data = load_yaml(config_path)
    data.pop("poison", None)  # the sweep's models learn from its clean training set
    return validate(model_cls, data)


def _train_ebm(config_path: str, sweep_dataset: Any, train: ImageSet, out_dir: Path) -> Path:
    cfg = _training_config(EbmJobConfig, config_path)
    cfg = cfg.model_copy(update={"dataset": sweep_dataset,
                                 "model": cfg.model.model_copy(update={"channels": train.shape[2]})})
    return _cached(cfg, train, out_dir, lambda c, d: train_ebm(
        c, train, train.images, d, run_name=c.run_name(), registered_name=f"genlab-ebm-{sweep_dataset.name}").model_dir,
        "ebm")


def _train_ddpm(config_path: str, sweep_dataset: Any, train: ImageSet, out_dir: Path) -> Path:
    cfg = _training_config(DdpmJobConfig, config_path)
    model = cfg.model.model_copy(update={"sample_size": train.shape[0], "channels": train.shape[2]})
    cfg = cfg.model_copy(update={"dataset": sweep_dataset, "model": model})
    return _cached(cfg, train, out_dir, lambda c, d: train_ddpm(
        c, train, train.images, d, run_name=c.run_name(), registered_name=c.registry_name()).model_dir, "ddpm")


def _cached(cfg: StrictModel, train: ImageSet, out_dir: Path, train_fn: Callable[[Any, Path], Path], kind: str) -> Path:
    key = hashlib.sha256(json.dumps({"config": cfg.model_dump(mode="json"), "data": train.hash},
                                    sort_keys=True).encode()).hexdigest()[:16]
    target = out_dir / f"{kind}-{key}"
    if not (target / FINISHED).is_file():
        print(f"[genlab] no {kind} model given: training one with small settings into {target} (once; cached)")
    with one_torch_thread():  # the small EBM recipe is sensitive to float reduction order: the tested model
        model = train_fn(cfg, target)
    with contextlib.suppress(FileNotFoundError):
        mark_used(target, FINISHED)  # the clock of the model cache's size cap (`cap_model_caches`)
    return model


TRAINERS: dict[type[StrictModel], tuple[str, Callable[[str, Any, ImageSet, Path], Path]]] = {
    EbmSettings: ("ebm", _train_ebm),
    EnergyModelSettings: ("ebm", _train_ebm),
    DdpmSettings: ("ddpm", _train_ddpm),
}
TRAINER_OF_KIND = dict(TRAINERS.values())


def model_kinds(settings: StrictModel, *, untrained_only: bool = False) -> set[str]:
    """Return the model kinds (`ebm`, `ddpm`) `settings` or a setting nested in it uses (`untrained_only`:
    only those without a checkpoint or registered model, which the sweep trains)."""
    kinds: set[str] = set()
    for name in type(settings).model_fields:
        if isinstance(value := getattr(settings, name), StrictModel):
            kinds |= model_kinds(value, untrained_only=untrained_only)
    entry = TRAINERS.get(type(settings))
    if entry is not None and not (untrained_only and (settings.checkpoint or settings.registered_model)):
        kinds.add(entry[0])
    return kinds


def untrained_kinds(settings: StrictModel) -> set[str]:
    """Return the model kinds (`ebm`, `ddpm`) that `settings` or a setting nested in it needs trained."""
    return model_kinds(settings, untrained_only=True)


@ray.remote(num_cpus=1)
def _train_kind_task(kind: str, config_path: str, sweep_dataset: Any, train: ImageSet, work_dir: str,
                     uri: str) -> str:
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return str(TRAINER_OF_KIND[kind](config_path, sweep_dataset, train, Path(work_dir) / "models"))


def start_missing_models(all_settings: list[StrictModel], model_training: dict[str, str], sweep_dataset: Any,
                         train: ImageSet, work_dir: Path) -> list[ray.ObjectRef]:
    """Start training every model kind the settings need but lack, concurrently as Ray tasks; return the
    tasks' refs (none when fewer than two kinds: `provide_models` trains a single kind in place).

    Each task trains one kind with one torch thread into the same cache `provide_models` reads,
    so the sequential pass that follows finds the models finished and only resolves paths.
    """
    kinds = sorted(set().union(*(untrained_kinds(s) for s in all_settings)))
    if len(kinds) < 2:
        return []
    print(f"[genlab] training {', '.join(kinds)} models in parallel (Ray tasks, once; cached)")
    uri = tracking_uri()
    train_ref = ray.put(train)
    return [_train_kind_task.remote(kind, str(Path(model_training[kind]).resolve()), sweep_dataset, train_ref,
                                    str(work_dir), uri) for kind in kinds]


def train_missing_models(all_settings: list[StrictModel], model_training: dict[str, str], sweep_dataset: Any,
                         train: ImageSet, work_dir: Path) -> None:
    """Train what `start_missing_models` starts and wait for it."""
    ray.get(start_missing_models(all_settings, model_training, sweep_dataset, train, work_dir))


@contextlib.contextmanager
def models_training_meanwhile(all_settings: list[StrictModel], model_training: dict[str, str], sweep_dataset: Any,
                              train: ImageSet, work_dir: Path) -> Iterator[None]:
    """Train the missing models in Ray tasks while the `with` body runs on the driver; wait for them on exit
    (on an error in the body, cancel them and re-raise)."""
    refs = start_missing_models(all_settings, model_training, sweep_dataset, train, work_dir)
    try:
        yield
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    ray.get(refs)


def provide_models(settings: StrictModel, model_training: dict[str, str], sweep_dataset: Any, train: ImageSet,
                   work_dir: Path) -> Any:
    """Return `settings` (and every model setting nested in it) with a checkpoint directory on the driver.

    A registered model is resolved here, on the driver (Ray actors may not see the tracking
    store); a model setting without a model gets one trained on first use. PureGen
    combinations hold EBM and DDPM settings, and each is provided for in the same way. The
    directory is the driver's only: the purification stage sends its bytes to the actors
    through Ray's object store (`genlab.purify.stage.ship_models`).
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


def cap_model_caches(provided: list[StrictModel], work_dir: Path, max_bytes: int) -> list[Path]:
    """Evict the least recently used models from `<work_dir>/models` (trained, `<kind>-<key>/finished.json`) and the
    registered-model download cache (`<name>/<version>/checkpoint.json`) until each holds at most `max_bytes`
    bytes; never a model of the `provided` settings (`provide_models`' result) nor one being trained or written.
    Returns the evicted directories."""
    in_use = [Path(source.checkpoint) for settings in provided for source in model_sources(settings)
              if source.checkpoint is not None]
    roots = {os.path.realpath(root): root for root in (Path(work_dir) / "models", model_cache_root())}
    return [path for root in roots.values()
            for path in evict_least_recently_used(root, max_bytes, (FINISHED, INDEX), keep=in_use, depth=2)]
