"""The Ray Data actor-pool purification stage with its cache, on a real local Ray (the baseline purifiers:
unit/test_purifiers.py)."""

import numpy as np
import pytest

from genlab.purify import build_purifier
from genlab.purify.baselines import GaussianNoiseSettings, JpegSettings
from genlab.purify.cache import PurificationCache
from genlab.purify.stage import PurificationStageConfig, StageInput, purify_cached, purify_parts_cached, run_stage


def test_stage_returns_every_row_once_aligned(ray_session, digits):
    images, labels = digits[0].images[:300], digits[0].labels[:300]
    rows = np.arange(1000, 1300)
    settings = GaussianNoiseSettings(sigma=8.0)
    staged = run_stage(images, labels, rows, settings, 5, PurificationStageConfig(num_actors=2, batch_size=32))
    direct = build_purifier(settings, seed=5).purify(images, rows)[0]
    assert np.array_equal(staged.by_steps[0], direct)
    assert staged.images_per_s > 0 and staged.speed == {}  # no network: no speed path to report


def test_cache_hit_skips_the_stage(ray_session, digits, tmp_path):
    images, labels = digits[0].images[:100], digits[0].labels[:100]
    cache = PurificationCache(tmp_path)
    stage = PurificationStageConfig(num_actors=1, batch_size=50)
    first = purify_cached(images, labels, np.arange(100), JpegSettings(quality=30), 0, stage, cache)
    second = purify_cached(images, labels, np.arange(100), JpegSettings(quality=30), 0, stage, cache)
    assert not first.from_cache and second.from_cache
    assert np.array_equal(first.by_steps[0], second.by_steps[0])
    assert second.images_per_s == pytest.approx(first.images_per_s)
    assert not [p for p in tmp_path.glob(".*") if p.is_dir()]  # no temp dirs left behind (only the entry's lock file)


def test_parts_share_one_stage_run_and_are_cached_part_by_part(ray_session, digits, tmp_path):
    images, labels = digits[0].images[:96], digits[0].labels[:96]
    clean = StageInput(images, labels, np.arange(96))
    poisoned = StageInput(255 - images[:16], labels[:16], np.arange(16))  # the same row ids as clean rows 0..15
    settings, cache = GaussianNoiseSettings(sigma=8.0), PurificationCache(tmp_path)
    stage = PurificationStageConfig(num_actors=2, batch_size=32)
    both = purify_parts_cached([clean, poisoned], settings, 2, stage, cache)
    direct = build_purifier(settings, seed=2)
    assert np.array_equal(both[0].by_steps[0], direct.purify(clean.images, clean.row_ids)[0])
    assert np.array_equal(both[1].by_steps[0], direct.purify(poisoned.images, poisoned.row_ids)[0])
    assert len([entry for entry in tmp_path.iterdir() if not entry.name.startswith(".")]) == 2
    alone = purify_cached(poisoned.images, poisoned.labels, poisoned.row_ids, settings, 2, stage, cache)
    assert alone.from_cache and np.array_equal(alone.by_steps[0], both[1].by_steps[0])


def test_stage_survives_a_killed_actor_with_every_row_once(ray_session, digits):
    images, labels = digits[0].images[:256], digits[0].labels[:256]
    rows = np.arange(256)
    settings = GaussianNoiseSettings(sigma=8.0)
    stage = PurificationStageConfig(num_actors=2, batch_size=32, crash_one_actor=True)
    staged = run_stage(images, labels, rows, settings, 1, stage)  # raises if a row is missing or repeated
    assert np.array_equal(staged.by_steps[0], build_purifier(settings, seed=1).purify(images, rows)[0])
