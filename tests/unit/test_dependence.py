"""MIC / TIC (genlab.causal.mic) and the HSIC independence test (genlab.causal.dependence) on known relations."""

from __future__ import annotations

import time

import numpy as np
import pytest

from genlab.causal.dependence import hsic
from genlab.causal.mic import characteristic_matrix, information_coefficients


def _uniform(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n)


@pytest.mark.parametrize("relation", [lambda x: 3.0 * x - 1.0, lambda x: x ** 2, lambda x: np.sin(4 * np.pi * x)],
                         ids=["linear", "parabola", "sine"])
def test_mic_of_a_noiseless_function_is_near_one(relation):
    x = _uniform(500, 0)
    scores = information_coefficients(x, relation(x))
    assert scores.mic >= 0.95
    assert scores.tic > 0.3 and scores.mic <= 1.0  # TIC: linear 1.0, parabola 0.73, sine 0.41; independent ~0.06


def test_mic_matches_minepy_on_its_documented_example():
    # minepy's python example: MINE(alpha=0.6, c=15, est="mic_approx") prints MIC 0.505716693417 with noise
    x = np.linspace(0, 1, 1000)
    y = np.sin(10 * np.pi * x) + x
    assert information_coefficients(x, y).mic == pytest.approx(1.0)
    np.random.seed(0)
    noisy = information_coefficients(x, y + np.random.uniform(-1, 1, x.shape[0]))
    assert noisy.mic == pytest.approx(0.505716693417, abs=1e-6)


def test_mic_of_independent_data_is_low_and_below_a_noisy_function():
    x, y = _uniform(1000, 1), _uniform(1000, 2)
    started = time.perf_counter()
    independent = information_coefficients(x, y)
    elapsed = time.perf_counter() - started
    noisy = information_coefficients(x, x + np.random.default_rng(3).normal(0.0, 0.4, 1000))
    assert independent.mic < 0.2 < noisy.mic
    assert elapsed < 1.0, f"MIC of n=1000 took {elapsed:.2f} s"


def test_mic_is_symmetric():
    x = _uniform(400, 4)
    y = np.exp(x) + np.random.default_rng(5).normal(0.0, 0.3, 400)
    assert information_coefficients(x, y).mic == pytest.approx(information_coefficients(y, x).mic, abs=0.02)
    matrix, transposed = characteristic_matrix(x, y), characteristic_matrix(y, x)
    assert np.allclose(matrix, transposed.T, equal_nan=True, atol=0.02)


def test_tic_falls_as_noise_rises():
    x = _uniform(500, 6)
    noise = np.random.default_rng(7).normal(size=500)
    tics = [information_coefficients(x, x ** 2 + scale * noise).tic for scale in (0.0, 0.05, 0.2, 1.0)]
    assert tics == sorted(tics, reverse=True) and tics[0] > 2 * tics[-1]
    assert information_coefficients(x, _uniform(500, 8)).tic < tics[-1]


def test_mic_e_estimator_is_at_most_mic_approx():
    x = _uniform(500, 9)
    y = np.sin(4 * np.pi * x)
    approx, equitable = information_coefficients(x, y), information_coefficients(x, y, estimator="mic_e")
    assert equitable.mic <= approx.mic and information_coefficients(x, 2 * x, estimator="mic_e").mic > 0.95


def test_hsic_detects_a_dependence_that_pearson_misses():
    x = _uniform(300, 10)
    y = x ** 2 + np.random.default_rng(11).normal(0.0, 0.05, 300)
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.1
    result = hsic(x, y)
    assert result["hsic_p_value"] < 0.01 and 0.2 < result["hsic"] <= 1.0  # 0.34 here; independent data < 0.05
    assert hsic(x, x)["hsic"] == pytest.approx(1.0)


def test_hsic_p_value_is_not_small_for_independent_data():
    result = hsic(_uniform(300, 12), np.random.default_rng(13).normal(size=300))
    assert result["hsic_p_value"] > 0.05 and result["hsic"] < 0.05


def test_hsic_subsamples_long_columns_reproducibly():
    x = _uniform(5000, 14)
    y = x + np.random.default_rng(15).normal(0.0, 1.0, 5000)
    assert hsic(x, y, max_rows=500, seed=1) == hsic(x, y, max_rows=500, seed=1)
    assert hsic(x, y, max_rows=500, seed=1)["hsic_p_value"] < 0.01


@pytest.mark.parametrize("first, second, message", [
    (np.array([0.0, 1.0, np.nan, 3.0, 4.0, 5.0]), np.arange(6.0), "NaN"),
    (np.arange(10.0), np.arange(9.0), "differ in length"),
    (np.arange(3.0), np.arange(3.0), "at least"),
    (np.ones((5, 2)), np.arange(5.0), "1-D"),
], ids=["nan", "length", "too-few-rows", "not-a-column"])
def test_bad_input_raises_a_clear_value_error(first, second, message):
    with pytest.raises(ValueError, match=message):
        information_coefficients(first, second)
    with pytest.raises(ValueError, match=message):
        hsic(first, second)
