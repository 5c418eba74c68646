"""`PoisonSet`: the on-disk format of a crafted poison (npz arrays + JSON metadata, no pickle).

Arrays (`<name>.npz`): `base_indices` int64 [P] (rows of the clean training set that are
replaced), `images` uint8 [P,H,W,C], `labels` int64 [P], and for backdoors the trigger:
`trigger_mask` float32 [H,W,1] in [0,1], `trigger_pattern` uint8 [H,W,C] and `trigger_delta`
float32 [H,W,C] in pixel units (-255..255). A triggered image is
`clip(x * (1 - mask) + pattern * mask + magnitude * delta, 0, 255)`.
Metadata (`<name>.json`): attack, config, kind (`backdoor` | `targeted`), target_class,
target_test_indices, dataset_hash, seed, epsilon (L-inf budget in pixel units, or null),
test_magnitude (optional, default 1: the trigger's `delta` is scaled by it at test time, as
Narcissus magnifies its trigger).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from genlab.data.imageset import ImageSet
from genlab.errors import PoisonSetError
from genlab.fileio import save_npz_atomic, write_text_atomic

ARRAY_KEYS = {"base_indices", "images", "labels", "trigger_mask", "trigger_pattern", "trigger_delta"}
META_KEYS = {"attack", "config", "kind", "target_class", "target_test_indices", "dataset_hash", "seed", "epsilon",
             "test_magnitude"}


@dataclass(frozen=True)
class Trigger:
    """A backdoor trigger: a stamped patch (`mask`, `pattern`) plus an additive `delta` (pixel units)."""

    mask: np.ndarray  # float32 [H,W,1] in [0,1]
    pattern: np.ndarray  # uint8 [H,W,C]
    delta: np.ndarray  # float32 [H,W,C], pixel units

    def apply(self, images: np.ndarray, magnitude: float = 1.0) -> np.ndarray:
        """Return uint8 NHWC `images` with the trigger applied (`magnitude` scales `delta`)."""
        mixed = images.astype(np.float32) * (1.0 - self.mask) + self.pattern.astype(np.float32) * self.mask
        return np.clip(mixed + magnitude * self.delta, 0, 255).round().astype(np.uint8)


@dataclass(frozen=True)
class PoisonSet:
    """Poisoned rows that replace `base_indices` of a clean training set, plus provenance."""

    base_indices: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    attack: str
    kind: Literal["backdoor", "targeted"]
    dataset_hash: str
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    target_class: int | None = None
    target_test_indices: list[int] = field(default_factory=list)
    epsilon: float | None = None
    trigger: Trigger | None = None
    test_magnitude: float = 1.0  # scale of the trigger's delta at test time (training poisons use 1)

    @cached_property
    def hash(self) -> str:
        """Return the sha256 hex digest of the poison rows and their metadata."""
        digest = hashlib.sha256()
        for array in (self.base_indices, self.images, self.labels):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(json.dumps(self.metadata(), sort_keys=True).encode())
        return digest.hexdigest()

    def metadata(self) -> dict[str, Any]:
        """Return the JSON metadata of this PoisonSet."""
        return {"attack": self.attack, "config": self.config, "kind": self.kind, "target_class": self.target_class,
                "target_test_indices": list(self.target_test_indices), "dataset_hash": self.dataset_hash,
                "seed": self.seed, "epsilon": self.epsilon, "test_magnitude": self.test_magnitude}

    def save(self, path: str | Path) -> Path:
        """Write `<path>.npz` + `<path>.json` atomically; return the npz path."""
        path = Path(path).with_suffix(".npz")
        arrays = {"base_indices": self.base_indices, "images": self.images, "labels": self.labels}
        if self.trigger is not None:
            arrays.update(trigger_mask=self.trigger.mask, trigger_pattern=self.trigger.pattern,
                          trigger_delta=self.trigger.delta)
        save_npz_atomic(path, **arrays)
        write_text_atomic(path.with_suffix(".json"), json.dumps(self.metadata(), indent=2))
        return path


def load_poison_set(path: str | Path, *, train_size: int, image_shape: tuple[int, int, int], num_classes: int,
                    dataset_hash: str | None = None, clean_images: np.ndarray | None = None) -> PoisonSet:
    """Read and validate a PoisonSet file; raise `PoisonSetError` with the reason if inconsistent.

    Checks: npz holds only plain arrays (no pickled objects), known keys, dtypes and shapes,
    finite values, indices unique and within the training set, labels in range, the dataset
    hash, and (given `clean_images`) that targeted poisons respect their L-inf `epsilon`.
    """
    path = Path(path).with_suffix(".npz")
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise PoisonSetError(f"{path}: need both {path.name} and {meta_path.name}")
    arrays = _read_plain_npz(path)
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoisonSetError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or set(meta) - META_KEYS or {"attack", "kind", "dataset_hash", "seed"} - set(meta):
        raise PoisonSetError(f"{meta_path}: metadata keys must be {sorted(META_KEYS)}")
    if set(arrays) - ARRAY_KEYS or {"base_indices", "images", "labels"} - set(arrays):
        raise PoisonSetError(f"{path}: arrays must be base_indices, images, labels (+ trigger_*), got {sorted(arrays)}")
    base, images, labels = arrays["base_indices"], arrays["images"], arrays["labels"]
    count = len(base)
    _check(base.dtype == np.int64 and base.ndim == 1, path, f"base_indices must be int64 [P], got {base.dtype} {base.shape}")
    _check(images.dtype == np.uint8 and images.shape == (count, *image_shape), path,
           f"images must be uint8 {(count, *image_shape)}, got {images.dtype} {images.shape}")
    _check(labels.dtype == np.int64 and labels.shape == (count,), path, f"labels must be int64 [{count}], got {labels.dtype} {labels.shape}")
    _check(count > 0 and base.min() >= 0 and base.max() < train_size, path, f"base_indices must lie in [0, {train_size})")
    _check(len(np.unique(base)) == count, path, "base_indices must be unique")
    _check(labels.min() >= 0 and labels.max() < num_classes, path, f"labels must lie in [0, {num_classes})")
    if dataset_hash is not None:
        _check(meta["dataset_hash"] == dataset_hash, path,
               f"dataset hash {str(meta['dataset_hash'])[:12]} does not match this dataset ({dataset_hash[:12]})")
    _check(meta["kind"] in ("backdoor", "targeted"), path, f"kind must be backdoor or targeted, got {meta['kind']!r}")
    trigger = _read_trigger(arrays, image_shape, path)
    _check(meta["kind"] != "backdoor" or trigger is not None, path, "a backdoor PoisonSet needs trigger_* arrays")
    epsilon = meta.get("epsilon")
    if epsilon is not None and clean_images is not None:
        excess = np.abs(images.astype(np.int16) - clean_images[base].astype(np.int16)).max()
        _check(excess <= np.ceil(float(epsilon)), path, f"poisons move pixels by up to {excess}, over the budget epsilon={epsilon}")
    magnitude = meta.get("test_magnitude", 1.0)
    _check(isinstance(magnitude, (int, float)) and not isinstance(magnitude, bool) and 0 < magnitude < float("inf"),
           path, f"test_magnitude must be a positive finite number, got {magnitude!r}")
    return PoisonSet(base_indices=base, images=images, labels=labels, attack=str(meta["attack"]), kind=meta["kind"],
                     dataset_hash=str(meta["dataset_hash"]), seed=int(meta["seed"]), config=meta.get("config") or {},
                     target_class=meta.get("target_class"), target_test_indices=list(meta.get("target_test_indices") or []),
                     epsilon=epsilon, trigger=trigger, test_magnitude=float(magnitude))


def load_poison_set_for(path: str | Path, train: ImageSet) -> PoisonSet:
    """Return the PoisonSet at `path` validated against the clean training set `train` (its size, image shape,
    classes, hash, and the epsilon budget against its images); raise `PoisonSetError` if inconsistent."""
    return load_poison_set(path, train_size=len(train), image_shape=train.shape, num_classes=len(train.classes),
                           dataset_hash=train.hash, clean_images=train.images)


def _check(condition: bool, path: Path, reason: str) -> None:
    if not condition:
        raise PoisonSetError(f"{path}: {reason}")


def _read_plain_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an npz with `allow_pickle=False`; object arrays are refused unread."""
    try:
        with zipfile.ZipFile(path):
            pass
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as exc:
        raise PoisonSetError(f"{path}: holds pickled objects, refused ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise PoisonSetError(f"{path}: not a valid npz archive ({exc})") from None


def _read_trigger(arrays: dict[str, np.ndarray], image_shape: tuple[int, int, int], path: Path) -> Trigger | None:
    keys = {"trigger_mask", "trigger_pattern", "trigger_delta"}
    present = keys & set(arrays)
    if not present:
        return None
    _check(present == keys, path, f"trigger needs all of {sorted(keys)}")
    mask, pattern, delta = arrays["trigger_mask"], arrays["trigger_pattern"], arrays["trigger_delta"]
    h, w, c = image_shape
    _check(mask.dtype == np.float32 and mask.shape == (h, w, 1) and np.isfinite(mask).all()
           and mask.min() >= 0 and mask.max() <= 1, path, f"trigger_mask must be finite float32 [{h},{w},1] in [0,1]")
    _check(pattern.dtype == np.uint8 and pattern.shape == image_shape, path, f"trigger_pattern must be uint8 {image_shape}")
    _check(delta.dtype == np.float32 and delta.shape == image_shape and np.isfinite(delta).all()
           and np.abs(delta).max() <= 255, path, f"trigger_delta must be finite float32 {image_shape} in [-255,255]")
    return Trigger(mask=mask, pattern=pattern, delta=delta)
