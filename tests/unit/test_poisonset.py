"""PoisonSet format: exact round trip, and inconsistent or malicious files refused with a reason."""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from genlab.attacks import BlendConfig, craft_poisons, load_poison_set
from genlab.errors import PoisonSetError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def blend_file(tmp_path, digits):
    train, _ = digits
    poison = craft_poisons(BlendConfig(), train, seed=0)
    return poison, poison.save(tmp_path / "blend")


def _load(path, digits):
    train, _ = digits
    return load_poison_set(path, train_size=len(train), image_shape=train.shape, num_classes=10,
                           dataset_hash=train.hash, clean_images=train.images)


def _rewrite(path: Path, **changes):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def test_round_trip_is_exact(blend_file, digits):
    poison, path = blend_file
    loaded = _load(path, digits)
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
    _rewrite(path, **change(poison))
    with pytest.raises(PoisonSetError, match=reason):
        _load(path, digits)


def test_wrong_dataset_hash_is_refused(blend_file, digits):
    _, path = blend_file
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["dataset_hash"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(PoisonSetError, match="dataset hash"):
        _load(path, digits)


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
        _load(path, digits)
    assert not marker.exists()


def test_import_job_accepts_good_and_refuses_bad_files(blend_file, tmp_path):
    poison, path = blend_file
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform")}
    ok = subprocess.run([sys.executable, "jobs/import_poisons.py", str(path), f"work_dir={tmp_path / 'work'}"],
                        cwd=REPO, capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert list((tmp_path / "work" / "poisons" / "imported").glob("blend-*.npz"))
    _rewrite(path, base_indices=poison.base_indices + 100_000)
    bad = subprocess.run([sys.executable, "jobs/import_poisons.py", str(path), f"work_dir={tmp_path / 'work2'}"],
                         cwd=REPO, capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "base_indices must lie in" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "work2" / "poisons").exists()
