"""Baseline purifiers: Gaussian noise and JPEG change images by the expected amounts, seeded per row; list values
expand into settings (the Ray Data stage: integration/test_purifiers.py)."""

import numpy as np

from genlab.purify import build_purifier
from genlab.purify.baselines import GaussianNoiseSettings, JpegSettings, NoneSettings


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
