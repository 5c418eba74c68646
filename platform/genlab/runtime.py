"""Where and how work runs: Ray (a local embedded cluster by default, or an existing one through
`RAY_ADDRESS`), the torch device, derived seeds, and the progress callback of long work."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import ray
import torch

from genlab.config import DEVICE, StrictModel
from genlab.errors import ConfigError

T = TypeVar("T")
Progress = Callable[[str], None]  # receives one human-readable line about long work (e.g. print)


def print_progress(line: str) -> None:
    """The default `Progress`: print `line` prefixed with [genlab], flushed at once."""
    print(f"[genlab] {line}", flush=True)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the body with one torch CPU thread (restored after): float reductions then add up in one order,
    so what the body computes does not depend on the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    """Return the torch device for 'auto' | 'cpu' | 'cuda' | 'cuda:N' ('auto' = cuda when available).

    Raises ConfigError (naming the key `device`) for another name, or when CUDA is asked for and torch sees none.
    """
    if not DEVICE.fullmatch(name):
        raise ConfigError(f"config key device: unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config key device: {name} was asked for but torch sees no CUDA device")
    return torch.device(name)


def derive_seed(*parts: object, bits: int = 32) -> int:
    """Return a seed in [0, 2**bits) derived from `parts` (e.g. a label, the run seed, a step), the same in
    every process: the low `bits` of sha256(":".join(parts)) read little-endian. 32 bits suit numpy and
    torch's CPU generator (which ignores higher bits of some seeds); at most 63."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << bits) - 1)


def seeded_generator(*parts: object, bits: int = 32) -> torch.Generator:
    """Return a CPU torch.Generator seeded by `derive_seed(*parts, bits=bits)`."""
    return torch.Generator().manual_seed(derive_seed(*parts, bits=bits))


class RaySettings(StrictModel):
    """Where Ray runs. With no address and no `RAY_ADDRESS`, a local Ray is started."""

    address: str | None = None  # ray://..., auto, or None (RAY_ADDRESS, else a new local Ray)
    num_cpus: int | None = None  # local Ray only: CPUs to use (None = all)
    object_store_memory: int | None = 1_000_000_000  # local Ray only: object store bytes


def init_ray(settings: RaySettings) -> None:
    """Connect to (or start) Ray once; workers import genlab from this checkout's `platform/`.

    `ray.init` replaces the process's SIGTERM handler with `sys.exit`; a handler the job had
    installed (`genlab.tracking.tracked_run`'s, which ends the runs KILLED) is put back.
    """
    if ray.is_initialized():
        return
    address = settings.address or os.environ.get("RAY_ADDRESS")
    source_root = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)}
    in_main = threading.current_thread() is threading.main_thread()
    job_handler = signal.getsignal(signal.SIGTERM) if in_main else None
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=True)
    else:
        ray.init(num_cpus=settings.num_cpus, object_store_memory=settings.object_store_memory,
                 include_dashboard=False, runtime_env={"env_vars": env})
    if callable(job_handler):
        signal.signal(signal.SIGTERM, job_handler)


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
