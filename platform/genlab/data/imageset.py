"""`ImageSet`: uint8 NHWC images, int64 labels and class names, saved as `.npz` + JSON."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from genlab.fileio import save_npz_atomic, write_text_atomic


@dataclass(frozen=True)
class ImageSet:
    """Images `uint8 [N,H,W,C]` (0..255), labels `int64 [N]`, class names; `hash` is sha256 hex."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"ImageSet images must be uint8 [N,H,W,C], got {self.images.dtype} {self.images.shape}")
        if self.labels.dtype != np.int64 or self.labels.shape != (len(self.images),):
            raise ValueError(f"ImageSet labels must be int64 [{len(self.images)}], got {self.labels.dtype} {self.labels.shape}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"ImageSet labels must lie in [0, {len(self.classes)})")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Return (H, W, C) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @cached_property
    def hash(self) -> str:
        """Return the sha256 hex digest of images, labels and class names."""
        digest = hashlib.sha256()
        digest.update(str(self.images.shape).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        digest.update(json.dumps(self.classes).encode())
        return digest.hexdigest()

    def subset(self, indices: np.ndarray) -> "ImageSet":
        """Return the rows at `indices` as a new ImageSet."""
        return ImageSet(self.images[indices], self.labels[indices], list(self.classes))

    def replace_rows(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> "ImageSet":
        """Return a copy with rows `indices` replaced by `images` / `labels`."""
        new_images, new_labels = self.images.copy(), self.labels.copy()
        new_images[indices], new_labels[indices] = images, labels
        return ImageSet(new_images, new_labels, list(self.classes))

    def save(self, path: str | Path) -> Path:
        """Write `<path>.npz` and `<path>.json` atomically; return the npz path."""
        path = Path(path).with_suffix(".npz")
        save_npz_atomic(path, images=self.images, labels=self.labels)
        write_text_atomic(path.with_suffix(".json"), json.dumps({"classes": self.classes, "hash": self.hash}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ImageSet":
        """Read an ImageSet written by `save` (never unpickles)."""
        path = Path(path).with_suffix(".npz")
        with np.load(path, allow_pickle=False) as arrays:
            images, labels = arrays["images"], arrays["labels"]
        meta = json.loads(path.with_suffix(".json").read_text())
        return cls(images, labels, meta["classes"])
