"""Connecting to Ray: a local embedded cluster by default, or an existing one (`RAY_ADDRESS`)."""

from __future__ import annotations

import os
from pathlib import Path

import ray

from genlab.config import StrictModel


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
