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

A file read back is untrusted (`load_poison_set`): every array's size, dtype and shape are
checked from the zip and npy headers before any member is decompressed, nothing is unpickled,
and the metadata is validated (an attack name safe as a file name, a target class in range, a
non-negative integer seed, target test rows in range, a targeted set's finite epsilon).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
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
ATTACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # an attack name is safe as one file name component
NPY_HEADER_BYTES = 65_536 + 16  # the most an npy file adds to its data (magic, version, header)
NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
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
                    dataset_hash: str | None = None, clean_images: np.ndarray | None = None,
                    test_size: int | None = None) -> PoisonSet:
    """Read and validate a PoisonSet file; raise `PoisonSetError` with the reason if inconsistent.

    Checks: every npz member's size, dtype and shape from its zip and npy headers before it is
    decompressed, no pickled objects, known keys, finite values, indices unique and within the
    training set, labels in range, the metadata (`_check_metadata`; test rows below `test_size`
    when given), the dataset hash, and (given `clean_images`) that poisons respect their L-inf `epsilon`.
    """
    path = Path(path).with_suffix(".npz")
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise PoisonSetError(f"{path}: need both {path.name} and {meta_path.name}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoisonSetError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or set(meta) - META_KEYS or {"attack", "kind", "dataset_hash", "seed"} - set(meta):
        raise PoisonSetError(f"{meta_path}: metadata keys must be {sorted(META_KEYS)}")
    _check_metadata(meta, meta_path, num_classes, test_size)
    arrays = _read_plain_npz(path, _member_limits(train_size, image_shape))
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
    trigger = _read_trigger(arrays, image_shape, path)
    _check(meta["kind"] != "backdoor" or trigger is not None, path, "a backdoor PoisonSet needs trigger_* arrays")
    epsilon = meta.get("epsilon")
    if epsilon is not None and clean_images is not None:
        excess = np.abs(images.astype(np.int16) - clean_images[base].astype(np.int16)).max()
        _check(excess <= np.ceil(float(epsilon)), path, f"poisons move pixels by up to {excess}, over the budget epsilon={epsilon}")
    return PoisonSet(base_indices=base, images=images, labels=labels, attack=meta["attack"], kind=meta["kind"],
                     dataset_hash=str(meta["dataset_hash"]), seed=meta["seed"], config=meta.get("config") or {},
                     target_class=meta["target_class"], target_test_indices=list(meta.get("target_test_indices") or []),
                     epsilon=None if epsilon is None else float(epsilon), trigger=trigger,
                     test_magnitude=float(meta.get("test_magnitude", 1.0)))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_metadata(meta: dict[str, Any], path: Path, num_classes: int, test_size: int | None) -> None:
    """Raise PoisonSetError naming the first metadata value a PoisonSet may not have.

    `attack` must be a plain name (letters, digits, `_.-`: it becomes a file name), `kind`
    backdoor or targeted, `target_class` an integer class (a backdoor without one would score 0%
    success), `seed` a non-negative integer, `target_test_indices` unique non-negative integers
    (below `test_size` when given; at least one for a targeted set), `epsilon` a non-negative
    finite number (required for a targeted set, whose budget it is), `test_magnitude` positive.
    """
    attack, kind, seed = meta["attack"], meta["kind"], meta["seed"]
    _check(isinstance(attack, str) and ATTACK_NAME.fullmatch(attack) is not None, path,
           f"attack must be a plain name (letters, digits, _ . -; at most 64), got {attack!r}")
    _check(kind in ("backdoor", "targeted"), path, f"kind must be backdoor or targeted, got {kind!r}")
    _check(_is_int(seed) and seed >= 0, path, f"seed must be a non-negative integer, got {seed!r}")
    target_class = meta.get("target_class")
    _check(_is_int(target_class) and 0 <= target_class < num_classes, path,
           f"target_class must be an integer class in [0, {num_classes}), got {target_class!r}")
    rows = meta.get("target_test_indices") or []
    limit = test_size if test_size is not None else float("inf")
    _check(isinstance(rows, list) and all(_is_int(i) and 0 <= i < limit for i in rows) and len(set(rows)) == len(rows),
           path, f"target_test_indices must be unique integer test rows in [0, {limit}), got {str(rows)[:80]}")
    _check(kind != "targeted" or rows, path, "a targeted PoisonSet needs target_test_indices")
    epsilon = meta.get("epsilon")
    _check(epsilon is None or (_is_finite_number(epsilon) and epsilon >= 0), path,
           f"epsilon must be a non-negative finite number or null, got {epsilon!r}")
    _check(kind != "targeted" or epsilon is not None, path, "a targeted PoisonSet needs its epsilon budget (not null)")
    magnitude = meta.get("test_magnitude", 1.0)
    _check(_is_finite_number(magnitude) and magnitude > 0, path,
           f"test_magnitude must be a positive finite number, got {magnitude!r}")


def load_poison_set_for(path: str | Path, train: ImageSet, test: ImageSet | None = None) -> PoisonSet:
    """Return the PoisonSet at `path` validated against the clean training set `train` (its size, image shape,
    classes, hash, and the epsilon budget against its images) and, given `test`, the test rows it targets;
    raise `PoisonSetError` if inconsistent."""
    return load_poison_set(path, train_size=len(train), image_shape=train.shape, num_classes=len(train.classes),
                           dataset_hash=train.hash, clean_images=train.images,
                           test_size=None if test is None else len(test))


def _check(condition: bool, path: Path, reason: str) -> None:
    if not condition:
        raise PoisonSetError(f"{path}: {reason}")


def _member_limits(train_size: int, image_shape: tuple[int, int, int]) -> dict[str, int]:
    """Return the most data bytes each array of a PoisonSet of this dataset can hold (at most one row per training image)."""
    pixels = math.prod(image_shape)
    return {"base_indices": 8 * train_size, "labels": 8 * train_size, "images": pixels * train_size,
            "trigger_mask": 4 * pixels, "trigger_pattern": pixels, "trigger_delta": 4 * pixels}


def _read_plain_npz(path: Path, limits: dict[str, int]) -> dict[str, np.ndarray]:
    """Return every array of an npz, each checked before it is decompressed: a known, unrepeated name, its
    uncompressed size in the zip header and its npy header's dtype (no objects) and shape within `limits`."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = [member.filename for member in members]
            for member in members:
                key = member.filename.removesuffix(".npy")
                _check(key in limits and names.count(member.filename) == 1, path,
                       f"arrays must be base_indices, images, labels (+ trigger_*), each once, got {sorted(names)}")
                _check(member.file_size <= limits[key] + NPY_HEADER_BYTES, path,
                       f"{key} is {member.file_size} bytes uncompressed, over the {limits[key]} this dataset allows")
            return {member.filename.removesuffix(".npy"): _read_member(archive, member, limits, path)
                    for member in members}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise PoisonSetError(f"{path}: not a valid npz archive ({exc})") from None


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: dict[str, int], path: Path) -> np.ndarray:
    """Return one npy member of `archive` after checking its header (dtype without objects, size within its limit)."""
    key = member.filename.removesuffix(".npy")
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        _check(version in NPY_HEADERS, path, f"{key} is in npy format {version}, not 1.0 or 2.0")
        shape, fortran, dtype = NPY_HEADERS[version](handle)
        _check(not dtype.hasobject, path, f"{key} holds pickled objects, refused")
        _check(math.prod(shape) * dtype.itemsize <= limits[key], path,
               f"{key} {dtype} {shape} is over the {limits[key]} bytes this dataset allows")
        data = handle.read(math.prod(shape) * dtype.itemsize)
    _check(len(data) == math.prod(shape) * dtype.itemsize, path, f"{key} is truncated")
    array = np.frombuffer(bytearray(data), dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


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
