"""Pendulum data: grid sizes, the generating equations, determinism by seed, images match labels, splits."""

from __future__ import annotations

import numpy as np

from genlab.causal.pendulum import (
    COLUMNS,
    GROUND_Y,
    PIVOT,
    X_RANGE,
    Y_RANGE,
    PendulumSettings,
    grid_indices,
    make_pendulum,
    pendulum_labels,
    pendulum_split,
    pendulum_table,
)

SOME_ROWS = np.array([0, 1, 100, 1234, 2500, 3655, 5000, 7307])


def ground_hit(x: np.ndarray, y: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Where the light ray through (x, y) meets the ground: walk along (cos phi, sin phi) to y = -0.5."""
    t = (GROUND_Y - y) / np.sin(phi)
    return x + t * np.cos(phi)


def test_grids_and_the_interleaved_parity_split_have_the_documented_sizes():
    for grid, total, test in (("cv", 7308, 1826), ("cs", 6952, 1737)):
        i, j = grid_indices(grid)
        assert len(i) == total and not np.any(j == 100)
        labels = pendulum_labels(i, j, 0.0, 0)
        mask = pendulum_split(labels, PendulumSettings(grid=grid, split="interleaved"))
        assert mask.sum() == test and (~mask).sum() == total - test and not mask[:4].any()


def test_labels_obey_the_generating_equations_to_1e6():
    i, j = grid_indices("cv")
    labels = pendulum_labels(i, j, 0.0, seed=0)
    theta, phi = np.radians(labels[:, 0]), np.radians(labels[:, 1])
    np.testing.assert_allclose(theta, i * np.pi / 200, atol=1e-12)
    np.testing.assert_allclose(phi, j * np.pi / 200, atol=1e-12)
    # shadow ends: the light rays through the pivot P and the rod tip T = P + 9.5 (sin theta, -cos theta)
    pivot = ground_hit(np.full_like(theta, PIVOT[0]), np.full_like(theta, PIVOT[1]), phi)
    tip = ground_hit(PIVOT[0] + 9.5 * np.sin(theta), PIVOT[1] - 9.5 * np.cos(theta), phi)
    assert np.max(np.abs(labels[:, 3] - (pivot + tip) / 2)) < 1e-6
    assert np.max(np.abs(labels[:, 2] - np.maximum(3.0, np.abs(tip - pivot)))) < 1e-6
    # the spec's closed forms and ranges on the CausalVAE grid
    closed = 10 + 4.75 * np.sin(theta) + (4.75 * np.cos(theta) - 11) / np.tan(phi)
    assert np.max(np.abs(labels[:, 3] - closed)) < 1e-6
    assert abs(labels[:, 2].min() - 3.0) < 1e-9 and abs(labels[:, 2].max() - 12.58) < 0.01
    assert abs(labels[:, 3].min() - 2.01) < 0.01 and abs(labels[:, 3].max() - 19.61) < 0.01
    assert 0.3 < np.mean(labels[:, 2] == 3.0) < 0.5  # the max(3, .) clip binds on about 40% of the grid


def test_label_noise_is_added_after_the_clip_and_seeded():
    i, j = grid_indices("cv")
    clean = pendulum_labels(i, j, 0.0, seed=0)
    noisy = pendulum_labels(i, j, 0.1, seed=0)
    np.testing.assert_array_equal(noisy[:, :2], clean[:, :2])
    residual = noisy[:, 2:] - clean[:, 2:]
    assert abs(residual.std() - 0.1) < 0.005 and (noisy[:, 2] < 3.0).any()
    np.testing.assert_array_equal(noisy, pendulum_labels(i, j, 0.1, seed=0))
    assert not np.array_equal(noisy, pendulum_labels(i, j, 0.1, seed=1))


def test_images_are_deterministic_by_seed():
    settings = PendulumSettings(image_size=48, label_noise_sd=0.2)
    first = make_pendulum(settings, seed=3, rows=SOME_ROWS)
    again = make_pendulum(settings, seed=3, rows=SOME_ROWS)
    other = make_pendulum(settings, seed=4, rows=SOME_ROWS)
    assert first.images.dtype == np.uint8 and first.images.shape == (len(SOME_ROWS), 48, 48, 3)
    assert first.images.tobytes() == again.images.tobytes()
    assert first.images.tobytes() != other.images.tobytes()
    gray = make_pendulum(settings.model_copy(update={"channels": 1}), seed=3, rows=SOME_ROWS)
    assert gray.images.shape == (len(SOME_ROWS), 48, 48, 1)


def test_the_drawn_shadow_is_where_the_labels_put_it():
    size = 96
    data = make_pendulum(PendulumSettings(image_size=size), seed=0, rows=SOME_ROWS)
    row = int(round((Y_RANGE[1] - GROUND_Y) / (Y_RANGE[1] - Y_RANGE[0]) * size - 0.5))  # pixel row of y = -0.5
    pixel = (X_RANGE[1] - X_RANGE[0]) / size
    for image, label in zip(data.images, data.labels):
        dark = np.flatnonzero(image[row].mean(axis=1) < 128)
        centres = (dark + 0.5) * pixel
        left = max(X_RANGE[0], label[3] - label[2] / 2)
        right = min(X_RANGE[1], label[3] + label[2] / 2)
        assert abs(centres.min() - left) < 2 * pixel + 0.4 and abs(centres.max() - right) < 2 * pixel + 0.4
    assert (data.images[:, :row - 2] < 128).any()  # the rod and ball are drawn above the ground


def test_ood_split_holds_out_the_tail_of_the_light_angle():
    settings = PendulumSettings(image_size=16, ood_variable="light", ood_quantile=0.75)
    i, j = grid_indices("cv")
    labels = pendulum_labels(i, j, 0.0, 0)
    test = pendulum_split(labels, settings)
    light = labels[:, COLUMNS.index("light")]
    assert light[test].min() > light[~test].max()
    assert 0.2 < test.mean() < 0.3
    subset = make_pendulum(settings, seed=0, rows=SOME_ROWS)
    np.testing.assert_array_equal(subset.test, test[SOME_ROWS])  # a subset keeps each scene's side


def test_pendulum_table_draws_rows_from_the_grid():
    table = pendulum_table(PendulumSettings(label_noise_sd=0.1), 250, seed=0)
    assert table.shape == (250, 4)
    np.testing.assert_array_equal(table, pendulum_table(PendulumSettings(label_noise_sd=0.1), 250, seed=0))
    assert len(np.unique(table[:, :2], axis=0)) == 250
