"""Baseline purifiers: Gaussian noise and JPEG change images by the expected amounts, seeded per row; list values
expand into settings (the Ray Data stage: integration/test_purifiers.py)."""

import numpy as np
import pytest

from genlab.purify import build_purifier
from genlab.purify.baselines import (
    GaussianNoisePurifier,
    GaussianNoiseSettings,
    IdentityPurifier,
    JpegSettings,
    NoneSettings,
)
from genlab.purify.diagnostics import trigger_kept


def test_gaussian_noise_moves_pixels_by_sigma_and_is_seeded_per_row(digits):
    images = np.full((64, 16, 16, 1), 128, dtype=np.uint8)
    rows = np.arange(64)
    purifier = build_purifier(GaussianNoiseSettings(sigma=10.0), seed=3)
    out = purifier.purify(images, rows)[0]
    assert abs((out.astype(float) - 128).std() - 10.0) < 0.5
    again = purifier.purify(images[::-1], rows[::-1])[0][::-1]
    assert np.array_equal(out, again)  # same row id -> same noise, whatever the batch order


def test_jpeg_changes_images_less_at_higher_quality(digits):
    images = digits[0].images[:50]
    error = {q: np.abs(build_purifier(JpegSettings(quality=q), seed=0).purify(images, np.arange(50))[0].astype(int)
                       - images.astype(int)).mean() for q in (10, 90)}
    assert error[10] > error[90] > 0


def test_list_values_expand_into_settings():
    assert [s.label() for s in JpegSettings(quality=[25, 75]).settings()] == ["jpeg-q25", "jpeg-q75"]
    assert NoneSettings().snapshot_steps() == [0]


def test_trigger_kept_counts_only_what_survives_along_the_trigger():
    rng = np.random.default_rng(0)
    images = rng.integers(60, 196, size=(8, 8, 8, 1), dtype=np.uint8)
    trigger = rng.choice([-20, 20], size=(8, 8, 1))
    triggered = (images + trigger).astype(np.uint8)
    # The noise purifier draws the same noise for a row whether it carries the trigger or not (no pixel clips
    # here), so the noise, 10/255 against a 20/255 trigger, does not count: the trigger passes through whole.
    assert abs(trigger_kept(GaussianNoisePurifier(sigma=10.0, seed=0), images, triggered)[0] - 1.0) < 0.01
    assert trigger_kept(IdentityPurifier(), images, triggered) == {0: 1.0}
    with pytest.raises(ValueError, match="differ in shape"):
        trigger_kept(IdentityPurifier(), images, triggered[:4])
    with pytest.raises(ValueError, match="no trigger"):
        trigger_kept(IdentityPurifier(), images, images)
