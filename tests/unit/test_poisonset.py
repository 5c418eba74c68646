"""PoisonSet format: exact round trip, and inconsistent or malicious files refused with a reason (the import job:
integration/test_poisonset.py)."""

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from genlab.errors import PoisonSetError
from tests.helpers import load_poisons, rewrite_npz


def test_round_trip_is_exact(blend_file, digits):
    poison, path = blend_file
    loaded = load_poisons(path, digits[0])
    assert loaded.hash == poison.hash
    assert np.array_equal(loaded.trigger.apply(digits[1].images), poison.trigger.apply(digits[1].images))


@pytest.mark.parametrize("change, reason", [
    (lambda p: {"images": p.images[:, :8]}, "images must be uint8"),
    (lambda p: {"images": p.images.astype(np.float32) * np.nan}, "images must be uint8"),
    (lambda p: {"trigger_delta": np.full_like(p.trigger.delta, np.nan)}, "trigger_delta must be finite"),
    (lambda p: {"base_indices": p.base_indices + 100_000}, "base_indices must lie in"),
    (lambda p: {"base_indices": np.zeros_like(p.base_indices)}, "unique"),
    (lambda p: {"labels": p.labels + 10}, "labels must lie in"),
    (lambda p: {"images": np.clip(p.images.astype(int) + 60, 0, 255).astype(np.uint8)}, "over the budget"),
], ids=["shape", "nan-images", "nan-trigger", "index-range", "duplicate-index", "label-range", "epsilon"])
def test_inconsistent_files_are_refused(blend_file, digits, change, reason):
    poison, path = blend_file
    rewrite_npz(path, **change(poison))
    with pytest.raises(PoisonSetError, match=reason):
        load_poisons(path, digits[0])


def test_wrong_dataset_hash_is_refused(blend_file, digits):
    _, path = blend_file
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["dataset_hash"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(PoisonSetError, match="dataset hash"):
        load_poisons(path, digits[0])


def _pickle_bomb(path: Path, marker: Path) -> None:
    """Write an npz whose `images` entry is a pickle that would create `marker` if unpickled."""
    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    np.save(buffer, np.array([Bomb()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("images.npy", buffer.getvalue())


def test_pickle_inside_is_refused_and_not_executed(blend_file, digits, tmp_path):
    poison, path = blend_file
    marker = tmp_path / "pwned"
    np.savez(path, base_indices=poison.base_indices, labels=poison.labels, trigger_mask=poison.trigger.mask,
             trigger_pattern=poison.trigger.pattern, trigger_delta=poison.trigger.delta)
    _pickle_bomb(path, marker)
    with pytest.raises(PoisonSetError, match="pickled objects"):
        load_poisons(path, digits[0])
    assert not marker.exists()

