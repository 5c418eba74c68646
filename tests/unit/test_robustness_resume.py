"""Issue 27 points 4-6 in the fast lane: `--resume` refuses Tune state outside the configured storage, a pickled
NestedRunCallback is restored as the resumed job's own, directory writes never delete before renaming, and the
purification cache evicts least recently used entries past its size cap."""

import copy
import json
import os
import pickle

import numpy as np
import pytest

from genlab.errors import CheckpointError, ConfigError
from genlab.fileio import atomic_directory
from genlab.purify.cache import PurificationCache, PurifiedImages
from genlab.sweep.config import SweepConfig
from genlab.sweep.runner import load_resume_state, state_path
from genlab.tracking import NestedRunCallback


def _write_state(work, tune_path):
    path = state_path(work, "defense-sweep")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"config": SweepConfig().model_dump(mode="json"), "parent_run_id": "r",
                                "tune_path": tune_path}))


@pytest.mark.parametrize("where", ["/tmp/elsewhere/defense-sweep-1", "{work}/ray_results/../x",
                                   "s3://other-bucket/defense-sweep-1"])
def test_resume_refuses_tune_state_outside_the_storage(tmp_path, where):
    _write_state(tmp_path, where.format(work=tmp_path))
    with pytest.raises(ConfigError, match="refusing to resume from Tune state"):
        load_resume_state(tmp_path, "defense-sweep")


def test_resume_accepts_an_experiment_in_the_storage(tmp_path):
    _write_state(tmp_path, str(tmp_path / "ray_results" / "defense-sweep-1"))
    assert load_resume_state(tmp_path, "defense-sweep")[1]["tune_path"].endswith("defense-sweep-1")
    _write_state(tmp_path / "s3", "s3://bucket/tune/defense-sweep-1")
    assert load_resume_state(tmp_path / "s3", "defense-sweep", "s3://bucket/tune")


def _callback(name):
    callback = NestedRunCallback.__new__(NestedRunCallback)  # no MLflow store in the fast lane
    callback.parent_run_id = name
    return callback


def test_pickled_callback_is_restored_as_the_fresh_one():
    stored = pickle.dumps([_callback("first attempt")])
    fresh = _callback("resumed")
    with fresh.replacing_restored():
        assert pickle.loads(stored)[0] is fresh
    with pytest.raises(CheckpointError, match="replacing_restored"):
        pickle.loads(stored)
    clone = copy.deepcopy(fresh)  # Tune's copies stay real copies
    assert clone is not fresh and clone.parent_run_id == "resumed"


def test_atomic_directory_replaces_without_deleting_first(tmp_path):
    target = tmp_path / "entry"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("new")
        assert (target / "a").read_text() == "old"  # the old copy stays readable while the new one is written
    assert (target / "a").read_text() == "new"
    with atomic_directory(target, keep_existing=True) as tmp:
        (tmp / "a").write_text("newer")
    assert (target / "a").read_text() == "new"  # a content-addressed entry keeps its first complete copy
    assert sorted(p.name for p in tmp_path.iterdir()) == [".entry.lock", "entry"]


def test_purification_cache_evicts_least_recently_used(tmp_path):
    rows = np.arange(32, dtype=np.int64)
    cache = PurificationCache(tmp_path / "purified")
    put = lambda key, fill: cache.put(key, PurifiedImages(rows, {0: np.full((32, 8, 8, 1), fill, np.uint8)}, None),
                                      rows % 10, {})
    put("a", 1)
    put("b", 2)
    one_entry = sum(f.stat().st_size for f in (tmp_path / "purified" / "a").iterdir())
    os.utime(tmp_path / "purified" / "a" / "meta.json", (1, 1))
    os.utime(tmp_path / "purified" / "b" / "meta.json", (2, 2))
    assert cache.get("a") is not None  # reading a makes b the least recently used
    cache.max_bytes = 2 * one_entry + one_entry // 2
    put("c", 3)
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c").by_steps[0][0, 0, 0, 0] == 3
