"""A size cap with least-recently-used eviction for the on-disk caches (purified samples, poisons, models).

A cache is a directory whose entries are subdirectories (up to `depth` levels down), each complete once
it holds a `marker` file; an entry's last use is the mtime of that marker (`mark_used` touches it on
every read). One call may name several markers, for a directory that holds two layouts (the model
cache: trained models `<kind>-<key>/finished.json`, downloads `<name>/<version>/checkpoint.json`).
`evict_least_recently_used` deletes whole entries, least recently used first, until the cache fits
its cap. It never deletes an entry in use: one the caller names in `keep` (e.g. a model the current
sweep needs, the entry just written), or one whose `genlab.fileio.path_lock` another writer or
reader holds, nor its parent's below the root (an entry being written, crafted or trained).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from filelock import Timeout

from genlab.fileio import path_lock, remove_directory


@dataclass(frozen=True)
class CacheEntry:
    """One complete cache entry: its directory, last use (seconds since the epoch) and size in bytes."""

    path: Path
    last_used: float
    size: int


def gigabytes_to_bytes(gigabytes: float | None) -> int | None:
    """Return a cap given in GB (1e9 bytes) as bytes; None (no cap) stays None."""
    return None if gigabytes is None else int(gigabytes * 1e9)


def directory_bytes(path: Path) -> int:
    """Return the total size in bytes of the files in directory `path` and below (0 if it vanished)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


def mark_used(entry: Path, marker: str) -> None:
    """Record that cache entry `entry` was used now (touch its `marker`); raises FileNotFoundError if it is gone."""
    os.utime(Path(entry) / marker)


def _last_used(entry: Path, markers: tuple[str, ...]) -> float:
    """Return the mtime of the first of `markers` that `entry` holds; raise FileNotFoundError if it holds none."""
    for marker in markers:
        with contextlib.suppress(FileNotFoundError):
            return os.stat(entry / marker).st_mtime
    raise FileNotFoundError(entry)


def cache_entries(root: Path, marker: str | tuple[str, ...], depth: int = 1) -> list[CacheEntry]:
    """Return the complete entries of cache `root`: the visible directories at most `depth` levels below it that
    hold `marker` (or one of several; once found, its subdirectories are not searched); hidden names (temp copies,
    locks) are skipped."""
    markers = (marker,) if isinstance(marker, str) else marker
    found, level = [], [Path(root)]
    for _ in range(depth):
        deeper = []
        for folder in level:
            try:
                children = [Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
            except FileNotFoundError:
                continue
            for child in children:
                try:
                    found.append(CacheEntry(child, _last_used(child, markers), directory_bytes(child)))
                except FileNotFoundError:
                    deeper.append(child)
        level = deeper
    return found


def evict_least_recently_used(root: Path, max_bytes: int, marker: str | tuple[str, ...],
                              keep: Iterable[str | Path] = (), depth: int = 1) -> list[Path]:
    """Delete whole entries of cache `root` (see `cache_entries`), least recently used first, until the entries
    total at most `max_bytes` bytes; never one in use (see the module docstring). Returns the evicted paths.

    `keep` holds paths (or names relative to `root`) in use: an entry equal to one or holding one is kept. Runs
    under the lock of `root` (one evictor at a time); each entry is deleted under its own lock and renamed aside
    first, so no reader sees half an entry.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    kept = [Path(os.path.realpath(root / k)) for k in keep]
    evicted = []
    with path_lock(root):
        entries = sorted(cache_entries(root, marker, depth), key=lambda e: (e.last_used, str(e.path)))
        total = sum(e.size for e in entries)
        for entry in entries:
            if total <= max_bytes:
                break
            real = Path(os.path.realpath(entry.path))
            if any(k == real or real in k.parents for k in kept) or not _remove_unless_locked(root, entry.path):
                continue
            total -= entry.size
            evicted.append(entry.path)
    return evicted


def _remove_unless_locked(root: Path, path: Path) -> bool:
    """Delete cache entry `path` under its lock and its parents' below `root`; return False (and keep it) when
    someone else holds one of them."""
    with contextlib.ExitStack() as held:
        for folder in [path, *(root / parent for parent in path.relative_to(root).parents)][:-1]:
            lock = path_lock(folder)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                return False
            held.callback(lock.release)
        remove_directory(path)
    return True
