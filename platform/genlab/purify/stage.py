"""The Ray Data purification stage: `map_batches` through an actor pool of purifiers.

Each actor builds its purifier once (`__init__`: model weights are loaded there) and
purifies numpy batches in `__call__`. Rows come back exploded per step count
(`position`, `row_id`, `image`, `label`, `steps`, and `speed`: how the actor ran its networks),
are gathered by the driver, and cached as parquet. `row_id` keys each row's noise (so the clean
and the poisoned copy of a training row are purified with the same noise); `position` is unique within a run, so several parts (clean
rows and each attack's poisoned rows) share one stage run and one actor-pool start-up.
Models travel to the actors through Ray's object store, never as paths: the driver reads each
checkpoint a setting names (`bundle_checkpoint`), puts it once, and every actor writes the
bytes it gets to a temporary directory of its own after checking their sha256, so actors on
worker nodes that cannot see the driver's work dir still load the same weights.
The driver writes the parquet itself: a Ray `write_parquet` stage would need CPUs that the
actor pool holds on small machines (Ray Data CPU starvation, ray#44687).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import ray
from pydantic import Field, TypeAdapter

from genlab.config import StrictModel
from genlab.purify.base import PurifierSettings
from genlab.purify.baselines import NoneSettings
from genlab.purify.cache import PurificationCache, PurifiedImages, content_key
from genlab.purify.model_source import (
    ModelSource,
    bundle_checkpoint,
    model_sources,
    unbundle_checkpoint,
    with_local_checkpoint,
    with_model_sources,
)
from genlab.purify.registry import PurifierConfig, build_purifier


class PurificationStageConfig(StrictModel):
    """How the Ray Data stage runs purifiers."""

    num_actors: int = Field(2, ge=1)  # actors in the pool (one model copy each)
    num_cpus_per_actor: float = Field(1.0, gt=0)  # CPUs each actor reserves (torch threads = this, at least 1)
    num_gpus_per_actor: float = Field(0.0, ge=0)  # GPUs per actor; fractional values share a GPU
    batch_size: int = Field(128, ge=1)  # rows per map_batches call
    crash_one_actor: bool = False  # fault injection: one actor process dies on its first batch (recovery test)


def ship_models(settings: PurifierSettings) -> tuple[PurifierSettings, dict[str, ray.ObjectRef]]:
    """Return (`settings` naming every model by its local checkpoint directory on the driver, that directory ->
    the object-store reference of its `CheckpointBundle`), each checkpoint read and put once."""
    local = with_model_sources(settings, with_local_checkpoint)
    refs: dict[str, ray.ObjectRef] = {}
    for source in model_sources(local):
        if source.checkpoint not in refs:
            refs[source.checkpoint] = ray.put(bundle_checkpoint(source.checkpoint, source.model_kind))
    return local, refs


class PurifierActor:
    """Ray Data callable class: one purifier per actor, numpy dict batches in and out."""

    def __init__(self, settings: dict[str, Any], seed: int, num_threads: int, models: dict[str, ray.ObjectRef],
                 rows_per_call: int, crash_marker: str | None = None) -> None:
        import torch

        torch.set_num_threads(max(1, num_threads))
        config = TypeAdapter(PurifierConfig).validate_python(settings)
        with tempfile.TemporaryDirectory(prefix="genlab-models-") as tmp:  # the weights are in memory once built
            arrived = {origin: str(unbundle_checkpoint(ray.get(ref), Path(tmp) / str(i)))
                       for i, (origin, ref) in enumerate(models.items())}

            def arrived_copy(source: ModelSource) -> ModelSource:
                return source.model_copy(update={"checkpoint": arrived[source.checkpoint]})

            self.purifier = build_purifier(with_model_sources(config, arrived_copy), seed=seed)
        self.crash_marker = crash_marker
        self.rows_per_call = rows_per_call  # a full call's rows: the batch the speed params report

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return the batch's rows once per step count, with a `steps` column."""
        if self.crash_marker is not None and not os.path.exists(self.crash_marker):
            open(self.crash_marker, "w").close()
            os._exit(1)  # the process dies mid-stage, as a preempted node would
        images = np.asarray(batch["image"])
        by_steps = self.purifier.purify(images, np.asarray(batch["row_id"]))
        steps = sorted(by_steps)
        count = len(batch["row_id"])
        speed = json.dumps(self.purifier.speed_params((self.rows_per_call, *images.shape[1:])), sort_keys=True)
        return {"position": np.tile(batch["position"], len(steps)), "row_id": np.tile(batch["row_id"], len(steps)),
                "label": np.tile(batch["label"], len(steps)),
                "image": np.concatenate([by_steps[s] for s in steps]),
                "steps": np.repeat(np.asarray(steps, dtype=np.int64), count),
                "speed": np.full(count * len(steps), speed)}  # how this actor ran (one short string, repeated)


def images_to_ray_dataset(images: np.ndarray, labels: np.ndarray, row_ids: np.ndarray, num_blocks: int) -> ray.data.Dataset:
    """Return a Ray Dataset with columns `position` (0..N-1), `row_id`, `image` (uint8 HWC tensor), `label`,
    in `num_blocks` blocks."""
    from ray.data.extensions import ArrowTensorArray

    table = pa.table({"position": np.arange(len(row_ids), dtype=np.int64), "row_id": row_ids.astype(np.int64),
                      "image": ArrowTensorArray.from_numpy(images), "label": labels.astype(np.int64)})
    bounds = np.linspace(0, len(row_ids), max(1, min(num_blocks, len(row_ids))) + 1).astype(int)
    return ray.data.from_arrow([table.slice(a, b - a) for a, b in zip(bounds[:-1], bounds[1:])])


def run_stage(images: np.ndarray, labels: np.ndarray, row_ids: np.ndarray, settings: PurifierSettings, seed: int,
              stage: PurificationStageConfig) -> PurifiedImages:
    """Purify rows through the actor pool; return them aligned with `row_ids`, with measured images/s."""
    dataset = images_to_ray_dataset(images, labels, row_ids, num_blocks=4 * stage.num_actors)
    settings, models = ship_models(settings)
    marker = os.path.join(tempfile.mkdtemp(prefix="genlab-crash-"), "crashed") if stage.crash_one_actor else None
    start = time.perf_counter()
    purified = dataset.map_batches(
        PurifierActor, fn_constructor_kwargs={"settings": settings.model_dump(mode="json"), "seed": seed,
                                              "num_threads": int(stage.num_cpus_per_actor), "models": models,
                                              "rows_per_call": stage.batch_size, "crash_marker": marker},
        batch_size=stage.batch_size, compute=ray.data.ActorPoolStrategy(size=stage.num_actors),
        num_cpus=stage.num_cpus_per_actor, num_gpus=stage.num_gpus_per_actor or None)
    chunks = list(purified.iter_batches(batch_size=None, batch_format="numpy"))
    elapsed = time.perf_counter() - start
    out_positions = np.concatenate([c["position"] for c in chunks])
    out_rows = np.concatenate([c["row_id"] for c in chunks])
    out_steps = np.concatenate([c["steps"] for c in chunks])
    out_images = np.concatenate([c["image"] for c in chunks]).astype(np.uint8)
    by_steps: dict[int, np.ndarray] = {}
    for step in np.unique(out_steps):
        mask = out_steps == step
        order = out_positions[mask]
        if len(order) != len(row_ids) or len(np.unique(order)) != len(row_ids) \
                or not np.array_equal(out_rows[mask], row_ids[order]):
            raise RuntimeError(f"purification stage returned {len(order)} rows for {len(row_ids)} inputs at steps={step}")
        aligned = np.empty_like(images)
        aligned[order] = out_images[mask]
        by_steps[int(step)] = aligned
    return PurifiedImages(row_ids, by_steps, images_per_s=len(row_ids) / elapsed, speed=_stage_speed(chunks))


def _stage_speed(chunks: list[dict[str, np.ndarray]]) -> dict[str, str]:
    """Return the speed params the actors reported (each for a full call); where they differ (actors on different
    devices), each key holds the distinct values joined by '|'."""
    seen: dict[str, list[str]] = {}
    for text in sorted({str(value) for chunk in chunks for value in np.unique(chunk["speed"])}):
        for key, value in json.loads(text).items():
            if value not in seen.setdefault(key, []):
                seen[key].append(value)
    return {key: "|".join(values) for key, values in seen.items()}


@dataclass(frozen=True)
class StageInput:
    """One part of a stage run: uint8 NHWC `images` with their `labels` and noise-keying `row_ids`."""

    images: np.ndarray
    labels: np.ndarray
    row_ids: np.ndarray

    def cache_key(self, settings: PurifierSettings, seed: int) -> str:
        """Return this part's purification-cache key under `settings` and `seed`."""
        return content_key(self.images, self.row_ids, settings.model_dump(mode="json"), seed,
                           settings.weights_fingerprint())


StageRunner = Callable[[np.ndarray, np.ndarray, np.ndarray, PurifierSettings, int, PurificationStageConfig],
                      PurifiedImages]


def purify_parts_cached(parts: Sequence[StageInput], settings: PurifierSettings, seed: int,
                        stage: PurificationStageConfig, cache: PurificationCache, *,
                        run: StageRunner | None = None) -> list[PurifiedImages]:
    """Return each part's purified rows (same order as `parts`); `none` passes rows through.

    Parts found in the cache are read from it; all the others go through ONE stage run
    together (one actor-pool start-up) and are then cached one entry per part, so a later
    sweep with a different mix of attacks still hits the cache part by part. The cache key
    covers the pixels, row ids, settings, seed and the model weights' fingerprint. `run`
    replaces the Ray Data stage (`run_stage`) with another runner of the same signature
    (bench/sweep_cost.py counts gradient evaluations in-process with one).
    """
    if isinstance(settings, NoneSettings):
        return [PurifiedImages(part.row_ids, {0: part.images}, images_per_s=None) for part in parts]
    keys = [part.cache_key(settings, seed) for part in parts]
    results = [cache.get(key) for key in keys]
    missing = [i for i, result in enumerate(results) if result is None]
    if not missing:
        return results
    runner = run or run_stage
    purified = runner(np.concatenate([parts[i].images for i in missing]),
                      np.concatenate([parts[i].labels for i in missing]),
                      np.concatenate([parts[i].row_ids for i in missing]), settings, seed, stage)
    start = 0
    for i in missing:
        end = start + len(parts[i].row_ids)
        results[i] = PurifiedImages(parts[i].row_ids, {s: a[start:end] for s, a in purified.by_steps.items()},
                                    images_per_s=purified.images_per_s, speed=purified.speed)
        cache.put(keys[i], results[i], parts[i].labels, settings.model_dump(mode="json"))
        start = end
    return results


def purify_cached(images: np.ndarray, labels: np.ndarray, row_ids: np.ndarray, settings: PurifierSettings, seed: int,
                  stage: PurificationStageConfig, cache: PurificationCache) -> PurifiedImages:
    """Return one set of purified rows, from the cache or a stage run (see `purify_parts_cached`)."""
    return purify_parts_cached([StageInput(images, labels, row_ids)], settings, seed, stage, cache)[0]
