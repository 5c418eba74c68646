"""Connecting to Ray: a local embedded cluster by default, or an existing one (`RAY_ADDRESS`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import ray

from genlab.config import StrictModel


T = TypeVar("T")


class RaySettings(StrictModel):
    """Where Ray runs. With no address and no `RAY_ADDRESS`, a local Ray is started."""

    address: str | None = None  # ray://..., auto, or None (RAY_ADDRESS, else a new local Ray)
    num_cpus: int | None = None  # local Ray only: CPUs to use (None = all)
    object_store_memory: int | None = 1_000_000_000  # local Ray only: object store bytes


def init_ray(settings: RaySettings) -> None:
    """Connect to (or start) Ray once; workers import genlab from this checkout's `platform/`."""
    if ray.is_initialized():
        return
    address = settings.address or os.environ.get("RAY_ADDRESS")
    source_root = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)}
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=True)
    else:
        ray.init(num_cpus=settings.num_cpus, object_store_memory=settings.object_store_memory,
                 include_dashboard=False, runtime_env={"env_vars": env})


def map_calls(fn: Callable[..., T], calls: Sequence[tuple], *, shared: tuple = (),
              on_done: Callable[[int, T], None] | None = None) -> list[T]:
    """Return [fn(*shared, *call) for call in calls], in call order.

    With Ray connected (`init_ray`), every call is one Ray task (1 CPU, and a quarter GPU where the
    cluster has GPUs) and `shared` goes to the object store once; otherwise the calls run here one
    after another. `on_done(index, result)` runs in this process as each call finishes (under Ray,
    in finishing order). A failed call raises its exception here.
    """
    if not ray.is_initialized():
        results = []
        for index, call in enumerate(calls):
            results.append(fn(*shared, *call))
            if on_done is not None:
                on_done(index, results[-1])
        return results
    gpus = 0.25 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus)(fn)
    shared_refs = [ray.put(value) for value in shared]
    pending = {task.remote(*shared_refs, *call): index for index, call in enumerate(calls)}
    done_results: dict[int, Any] = {}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ref)
        done_results[index] = ray.get(ref)
        if on_done is not None:
            on_done(index, done_results[index])
    return [done_results[index] for index in range(len(calls))]
