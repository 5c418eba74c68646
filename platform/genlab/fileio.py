"""Atomic writes: every file or directory genlab produces appears whole or not at all.

Writers of one directory (`atomic_directory`) are serialized by a file lock beside it
(`path_lock`: `.<name>.lock`, the `filelock` package), so any number of processes may write
one key of a cache at once; the new copy is renamed into place and an old copy is renamed
aside and deleted only after that, never before.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from filelock import FileLock


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temp file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write `payload` as indented JSON to `path` atomically; return the path."""
    return write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> Path:
    """Write arrays to `path` (.npz, no pickled objects) atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    with os.fdopen(fd, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)
    return path


def path_lock(path: Path) -> FileLock:
    """Return the inter-process lock of `path` (the file `.<name>.lock` beside it; its directory is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.parent / f".{path.name}.lock"))


def _renamed_aside(path: Path) -> Path | None:
    """Rename `path` to a hidden name beside it; return that name (None if `path` does not exist)."""
    aside = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    return aside


def remove_directory(path: Path) -> None:
    """Delete directory `path` by renaming it aside first, so no reader ever sees it half deleted."""
    aside = _renamed_aside(Path(path))
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temp directory that is renamed to `path` only if the block finishes without error.

    Under `path_lock(path)`: the new copy replaces an existing one (renamed aside, deleted after),
    or, with `keep_existing` (a content-addressed cache: one key, one content), an existing copy
    is kept and the new one discarded.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        with path_lock(path):
            if not (keep_existing and path.exists()):
                aside = _renamed_aside(path)
                os.rename(tmp, path)
                if aside is not None:
                    shutil.rmtree(aside, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
