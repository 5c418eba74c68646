"""Dependence between two columns: input checks shared by the estimators, and the HSIC independence test.

HSIC (Gretton et al. 2005, 2008) with Gaussian kernels whose bandwidths come from the median
heuristic (the median of the positive pairwise distances of each column). The biased
estimate HSIC_b = tr(K H L H) / N^2 (H the centring matrix) is reported normalised by
sqrt(HSIC_b(x, x) HSIC_b(y, y)), which puts it in [0, 1] (0 for independent columns in the
large-N limit, 1 when one column's kernel matrix is the other's). The p-value of
H0: x independent of y is the gamma approximation of the null distribution of N HSIC_b
(Gretton et al. 2008, "A kernel statistical test of independence"), matched in mean and
variance. The kernel matrices are N x N, so columns longer than `max_rows` are tested on a
seeded random subsample of that many rows.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import gamma

HSIC_MAX_ROWS = 2000  # rows kept for the N x N kernel matrices (about 32 MB each in float64)
HSIC_MIN_ROWS = 6  # the null variance of the gamma approximation has a factor (N - 4)(N - 5)


def paired_columns(first: np.ndarray, second: np.ndarray, *, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Return both columns as float64 [N]; ValueError unless they are 1-D, finite, equally long and N >= min_rows."""
    x, y = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"dependence: expected two 1-D columns, got shapes {x.shape} and {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"dependence: the columns differ in length ({len(x)} vs {len(y)} rows)")
    if len(x) < min_rows:
        raise ValueError(f"dependence: {len(x)} rows, at least {min_rows} needed")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("dependence: the columns contain NaN or infinite values")
    return x, y


def _centred_gaussian_kernel(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (K, H K H) [N, N] for a Gaussian kernel of median-heuristic bandwidth over one column [N]."""
    squared = (column[:, None] - column[None, :]) ** 2
    positive = squared[squared > 0]
    bandwidth2 = float(np.median(positive)) if positive.size else 1.0  # a constant column: any width gives K = 1
    kernel = np.exp(-squared / (2.0 * bandwidth2))
    centred = kernel - kernel.mean(axis=0, keepdims=True)
    return kernel, centred - centred.mean(axis=1, keepdims=True)


def _gamma_p_value(kernel_x: np.ndarray, kernel_y: np.ndarray, centred_x: np.ndarray, centred_y: np.ndarray,
                   statistic: float) -> float:
    """Return P(N HSIC_b >= statistic | H0) under the gamma approximation (Gretton et al. 2008), in [0, 1]."""
    n = len(kernel_x)
    products = (centred_x * centred_y / 6.0) ** 2
    variance = (products.sum() - np.trace(products)) / n / (n - 1)
    variance *= 72.0 * (n - 4) * (n - 5) / n / (n - 1) / (n - 2) / (n - 3)
    mean_x = (kernel_x.sum() - np.trace(kernel_x)) / n / (n - 1)
    mean_y = (kernel_y.sum() - np.trace(kernel_y)) / n / (n - 1)
    mean = (1.0 + mean_x * mean_y - mean_x - mean_y) / n
    if variance <= 0 or mean <= 0:  # a constant column: HSIC is exactly 0, nothing to reject
        return 1.0
    return float(gamma.sf(statistic, mean ** 2 / variance, scale=variance * n / mean))


def hsic(first: np.ndarray, second: np.ndarray, *, max_rows: int = HSIC_MAX_ROWS, seed: int = 0) -> dict[str, float]:
    """Return the Gaussian-kernel HSIC test of two columns [N] (see the module docstring).

    Keys: `hsic` (normalised HSIC_b, in [0, 1]), `hsic_statistic` (N HSIC_b, >= 0, the test
    statistic) and `hsic_p_value` (in [0, 1]; small rejects independence). Columns longer
    than `max_rows` are subsampled (the same seeded rows of both). ValueError on NaN or
    infinite values, unequal lengths or fewer than 6 rows.
    """
    x, y = paired_columns(first, second, min_rows=HSIC_MIN_ROWS)
    if len(x) > max_rows:
        rows = np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False)
        x, y = x[rows], y[rows]
    n = len(x)
    kernel_x, centred_x = _centred_gaussian_kernel(x)
    kernel_y, centred_y = _centred_gaussian_kernel(y)
    cross = float((centred_x * centred_y).sum()) / n ** 2
    scale = np.sqrt(float((centred_x ** 2).sum()) * float((centred_y ** 2).sum())) / n ** 2
    return {"hsic": float(np.clip(cross / scale, 0.0, 1.0)) if scale > 0 else 0.0,
            "hsic_statistic": n * cross,
            "hsic_p_value": _gamma_p_value(kernel_x, kernel_y, centred_x, centred_y, n * cross)}
