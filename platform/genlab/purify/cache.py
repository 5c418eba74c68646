"""The purified-sample cache: parquet per (images, purifier setting, model version, seed).

Layout: `<root>/<key>/part-0.parquet` with columns `row_id`, `image` (flat uint8 list, shape in meta.json), `label`,
`steps`, plus `meta.json` (`images_per_s` measured when it was computed, `speed`: the path its networks ran,
`settings`). Each
entry is written to a temp dir and renamed when complete, so a killed run leaves no half entry;
concurrent writers of one key are serialized by a file lock and the first complete copy stays
(`genlab.fileio.atomic_directory`). With `max_bytes`, the least recently used entries (by the
mtime of their `meta.json`, touched on every read) are evicted after each write until the cache
fits (`genlab.cache_cap.evict_least_recently_used`); a reader whose entry is evicted under it gets a miss.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genlab.cache_cap import evict_least_recently_used, mark_used
from genlab.fileio import atomic_directory

MARKER = "meta.json"  # an entry is complete once it holds this; its mtime is the entry's last use


@dataclass(frozen=True)
class PurifiedImages:
    """Purified copies of a set of rows: `{steps: uint8 [N,H,W,C]}` aligned with `row_ids`."""

    row_ids: np.ndarray
    by_steps: dict[int, np.ndarray]
    images_per_s: float | None  # purification throughput when it was computed (None: not measured)
    from_cache: bool = False
    speed: dict[str, str] = field(default_factory=dict)  # how its networks ran (`Purifier.speed_params`); {}: no network


def content_key(images: np.ndarray, row_ids: np.ndarray, settings: dict[str, Any], seed: int,
                model_version: str | None = None) -> str:
    """Return the cache key: sha256 over the pixels, row ids, purifier settings, model version and seed."""
    digest = hashlib.sha256()
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(row_ids).tobytes())
    digest.update(json.dumps({"settings": settings, "seed": seed, "model": model_version}, sort_keys=True).encode())
    return digest.hexdigest()[:32]


class PurificationCache:
    """Reads and writes purified rows under `root` (a local or shared directory), at most `max_bytes` of them
    (None: no cap; least recently used entries are evicted)."""

    def __init__(self, root: str | Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def get(self, key: str) -> PurifiedImages | None:
        """Return the cached entry for `key` (marking it used now), or None when absent or evicted while read."""
        entry = self.root / key
        try:
            mark_used(entry, MARKER)
            meta = json.loads((entry / MARKER).read_text())
            table = pq.read_table(entry / "part-0.parquet")
        except FileNotFoundError:
            return None
        steps = table.column("steps").to_numpy()
        row_ids = table.column("row_id").to_numpy()
        images = table.column("image").combine_chunks().flatten().to_numpy().reshape(meta["shape"])
        by_steps = {int(s): images[steps == s] for s in np.unique(steps)}
        first = int(steps[0])
        return PurifiedImages(row_ids[steps == first], by_steps, meta["images_per_s"], from_cache=True,
                              speed=meta.get("speed", {}))

    def put(self, key: str, purified: PurifiedImages, labels: np.ndarray, settings: dict[str, Any]) -> None:
        """Write `purified` (with the rows' `labels`) under `key`, atomically."""
        steps = sorted(purified.by_steps)
        images = np.concatenate([purified.by_steps[s] for s in steps])
        table = pa.table({
            "row_id": np.tile(purified.row_ids, len(steps)),
            "image": pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), int(np.prod(images.shape[1:]))),
            "label": np.tile(labels, len(steps)),
            "steps": np.repeat(np.asarray(steps, dtype=np.int64), len(purified.row_ids)),
        })
        with atomic_directory(self.root / key, keep_existing=True) as tmp:
            pq.write_table(table, tmp / "part-0.parquet")
            meta = {"images_per_s": purified.images_per_s, "speed": purified.speed, "settings": settings,
                    "shape": list(images.shape)}
            (tmp / MARKER).write_text(json.dumps(meta, indent=2))
        if self.max_bytes is not None:
            evict_least_recently_used(self.root, self.max_bytes, MARKER, keep=[key])
