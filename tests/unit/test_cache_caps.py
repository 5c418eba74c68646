"""Issue 27 point 6: the poison and model caches have a size cap with least-recently-used eviction
(`genlab.cache_cap`, shared with the purification cache), and never evict an entry in use."""

import os

from genlab.attacks import BlendConfig
from genlab.attacks.crafting import PROVENANCE, craft_cached
from genlab.cache_cap import cache_entries, directory_bytes, evict_least_recently_used
from genlab.checkpoints import INDEX
from genlab.fileio import path_lock
from genlab.purify.ebm import EbmSettings
from genlab.sweep.provisioning import cap_model_caches
from genlab.train.generative_common import FINISHED

QUIET = {"progress": lambda line: None}


def _entry(path, marker, used_at, size=1000):
    """Make a cache entry at `path`: `size` bytes of data and its `marker`, last used at `used_at` (epoch s)."""
    path.mkdir(parents=True)
    (path / "data.bin").write_bytes(b"x" * size)
    (path / marker).write_text("{}")
    os.utime(path / marker, (used_at, used_at))
    return path


def test_eviction_goes_least_recently_used_first_and_skips_kept_and_locked_entries(tmp_path):
    for name, used_at in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]:
        _entry(tmp_path / name, "meta.json", used_at)
    one = directory_bytes(tmp_path / "e")
    lock = path_lock(tmp_path / "b")  # b is being written by someone
    lock.acquire()
    try:
        evicted = evict_least_recently_used(tmp_path, 3 * one, "meta.json", keep=["a"])
    finally:
        lock.release()
    assert [p.name for p in evicted] == ["c", "d"]  # a kept, b locked, then oldest first until it fits
    assert sorted(e.path.name for e in cache_entries(tmp_path, "meta.json")) == ["a", "b", "e"]


def test_poison_cache_cap_evicts_the_least_recently_used_attack(digits, tmp_path):
    train, test = digits
    craft = lambda seed, **cap: craft_cached(BlendConfig(), train, test, seed, tmp_path, **QUIET, **cap)
    first, second = craft(0).directory, craft(1).directory
    one = directory_bytes(first)
    os.utime(first / PROVENANCE, (1, 1))
    os.utime(second / PROVENANCE, (2, 2))
    craft(0)  # reused: now the most recently used
    third = craft(2, max_bytes=2 * one + one // 2).directory
    assert first.is_dir() and third.is_dir() and not second.exists()
    assert sum(e.size for e in cache_entries(tmp_path, PROVENANCE)) <= 2 * one + one // 2


def test_model_cache_cap_keeps_the_sweeps_models_and_evicts_the_least_recently_used(tmp_path, monkeypatch):
    downloads = tmp_path / "downloads"
    monkeypatch.setenv("GENLAB_MODEL_CACHE", str(downloads))
    models = tmp_path / "work" / "models"
    trained_old = _entry(models / "ebm-old", FINISHED, 1)
    _entry(trained_old / "model", INDEX, 1)
    trained_used = _entry(models / "ebm-used", FINISHED, 2)  # the oldest but one, and the sweep uses it
    _entry(trained_used / "model", INDEX, 2)
    _entry(models / "ddpm-new", FINISHED, 3)
    for version, used_at in [("1", 1), ("2", 3), ("3", 4), ("4", 5)]:
        _entry(downloads / "genlab-ebm-digits" / version, INDEX, used_at)
    one_download = directory_bytes(downloads / "genlab-ebm-digits" / "1")
    provided = [EbmSettings(checkpoint=str(trained_used / "model")),
                EbmSettings(checkpoint=str(downloads / "genlab-ebm-digits" / "1"))]
    cap = 3 * one_download  # models: ebm-used (two files) + ddpm-new; downloads: three versions
    evicted = cap_model_caches(provided, tmp_path / "work", cap)
    assert sorted(p.name for p in evicted) == ["2", "ebm-old"]
    assert trained_used.is_dir() and (downloads / "genlab-ebm-digits" / "1").is_dir()
    for root in (models, downloads):
        assert sum(e.size for e in cache_entries(root, (FINISHED, INDEX), depth=2)) <= cap
