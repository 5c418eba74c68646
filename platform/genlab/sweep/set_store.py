"""Where a sweep's purified training sets wait for their trials: Ray's object store, not the driver.

Each (attack, purifier setting, step count) training set is put into the object store the moment
it is made (`store_training_set`) and the driver keeps only its `ObjectRef`, so the driver's
memory peaks near one training set (plus the purified clean rows of the setting being built)
whatever the grid size; Ray spills objects to disk when the store is full. Each trial fetches
only its own set (`load_training_set`), on whichever node it runs.
"""

from __future__ import annotations

import numpy as np
import ray


def store_training_set(images: np.ndarray, labels: np.ndarray) -> ray.ObjectRef:
    """Put one training set (uint8 images [N,H,W,C], int64 labels [N]) into the object store; return its ref."""
    return ray.put((images, labels))


def load_training_set(ref: ray.ObjectRef) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N,H,W,C], labels int64 [N]) of a stored training set (read-only arrays)."""
    return ray.get(ref)
