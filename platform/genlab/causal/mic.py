"""Maximal and total information coefficients, MIC and TIC (Reshef et al. 2011; 2016), as minepy computes them.

For every grid size (k columns for x, l rows for y) with k, l >= 2 and k l <= B(N) =
max(N^alpha, 4), the characteristic matrix entry is

    M[k, l] = max I(grid) / log(min(k, l))   (mutual information in nats, so M in [0, 1])

where the maximum runs over grids with one axis an equipartition (equal counts, ties kept
in one bin) and the other axis free, both orientations tried. The free axis is optimised
exactly by dynamic programming over "clumps" (OptimizeXAxis): runs of points, consecutive
along the free axis, that share their row of the equipartitioned axis; no optimal
partition splits one. When there are more than `clumps_factor` x (columns wanted) clumps,
they are merged into that many superclumps of about equal counts first (minepy's c = 15).

Estimators: `mic_approx` (Reshef et al. 2011's ApproxMaxMI, minepy's default and the one
CausalVAE reports) keeps both orientations for every entry; `mic_e` (Reshef et al. 2016,
"Measuring dependence powerfully and equitably") keeps only grids whose *larger* axis is
the equipartitioned one (the equicharacteristic matrix), which is cheaper and consistent
but lower at finite N for periodic relations.

MIC = max of M (in [0, 1]; about 1 for a noiseless functional relation, near 0 for
independent data, falling towards 0 as N grows). TIC = sum of M (in [0, number of
entries]); minepy's `tic(norm=True)` divides it by the number of entries, which is the
`tic` reported here (in [0, 1]), with the sum as `tic_total`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from genlab.causal.dependence import paired_columns

MIC_MIN_ROWS = 4
Estimator = Literal["mic_approx", "mic_e"]


@dataclass(frozen=True)
class InformationCoefficients:
    """MIC_e in [0, 1], TIC_e normalised by the number of grid sizes (`tic`, [0, 1]) and summed (`tic_total`)."""

    mic: float
    tic: float
    tic_total: float


def _xlogx(counts: np.ndarray) -> np.ndarray:
    """Return c log c elementwise (0 for c = 0), in nats."""
    safe = np.where(counts > 0, counts, 1.0)
    return counts * np.log(safe)


def equipartition(values: np.ndarray, bins: int) -> np.ndarray:
    """Return int64 [N] bin indices in 0..bins-1 of about N / bins values each; equal values share a bin."""
    first_rank = np.searchsorted(np.sort(values), values, side="left")
    return first_rank * bins // len(values)


def _clump_ends(free_sorted: np.ndarray, rows_sorted: np.ndarray, max_clumps: int) -> np.ndarray:
    """Return int64 [m]: the cumulative point counts at the ends of the (super)clumps along the free axis.

    Points are given sorted by the free axis. Tied free values form one block; a block is
    labelled by its row if all its points share one, else it is mixed. Consecutive blocks
    with the same row label form a clump; a mixed block is a clump of its own.
    """
    n = len(free_sorted)
    block_starts = np.flatnonzero(np.r_[True, free_sorted[1:] != free_sorted[:-1]])
    low, high = np.minimum.reduceat(rows_sorted, block_starts), np.maximum.reduceat(rows_sorted, block_starts)
    label = np.where(low == high, low, -1)
    new_clump = np.r_[True, (label[1:] != label[:-1]) | (label[1:] == -1)]
    ends = np.r_[block_starts[new_clump][1:], n]
    if len(ends) > max_clumps:  # superclumps: cut at the clump ends nearest to equal-count targets
        targets = n * np.arange(1, max_clumps + 1) / max_clumps
        ends = np.unique(ends[np.minimum(np.searchsorted(ends, targets, side="left"), len(ends) - 1)])
    return ends


def optimise_free_axis(free: np.ndarray, rows: np.ndarray, num_rows: int, max_columns: int,
                       clumps_factor: int) -> np.ndarray:
    """Return float64 [max_columns + 1]: entry t = the largest I(free partition; rows) in nats over
    partitions of the free axis into at most t columns (entries 0 and 1 are 0).

    `rows` [N] is the fixed partition of the other axis (indices < num_rows). Dynamic
    programming over clump boundaries: I = H(rows) - sum_columns (n_c / N) H(rows | column),
    and the second term is additive over columns.
    """
    n = len(free)
    order = np.argsort(free, kind="stable")
    ends = _clump_ends(free[order], rows[order], clumps_factor * max_columns)
    cumulative = np.cumsum(np.eye(num_rows)[rows[order]], axis=0)
    boundaries = np.vstack([np.zeros((1, num_rows)), cumulative[ends - 1]])  # [m + 1, num_rows]
    counts = boundaries[None, :, :] - boundaries[:, None, :]  # [s, i, row]: points of rows in clumps s..i-1
    # score[s, i] = -(n_c / N) H(rows | column s..i-1) = (sum_r n_cr log n_cr - n_c log n_c) / N
    score = (_xlogx(counts).sum(axis=-1) - _xlogx(counts.sum(axis=-1))) / n
    score[np.tril_indices(len(boundaries))] = -np.inf  # a column needs s < i
    marginal = boundaries[-1] / n
    entropy_rows = -float(_xlogx(marginal).sum())
    best = np.zeros(max_columns + 1)
    reach = score[0]  # reach[i]: best score of clumps 0..i-1 split into t columns (t = 1)
    for t in range(2, max_columns + 1):
        reach = np.max(reach[:, None] + score, axis=0)
        best[t] = max(best[t - 1], entropy_rows + reach[-1]) if np.isfinite(reach[-1]) else best[t - 1]
    return np.maximum(best, 0.0)


def characteristic_matrix(first: np.ndarray, second: np.ndarray, *, alpha: float = 0.6, clumps_factor: int = 15,
                          estimator: Estimator = "mic_approx") -> np.ndarray:
    """Return the equicharacteristic matrix M float64 [K + 1, L + 1] of x = first, y = second (values in [0, 1]).

    M[k, l] (k columns of x, l rows of y, k, l >= 2, k l <= B = max(N^alpha, 4)) is defined as
    in the module docstring; other entries are NaN. ValueError on NaN or infinite values,
    unequal lengths or fewer than 4 rows.
    """
    x, y = paired_columns(first, second, min_rows=MIC_MIN_ROWS)
    if not 0 < alpha <= 1:
        raise ValueError(f"mic: alpha must be in (0, 1], got {alpha}")
    if estimator not in ("mic_approx", "mic_e"):
        raise ValueError(f"mic: estimator must be mic_approx or mic_e, got {estimator!r}")
    limit = max(int(np.floor(len(x) ** alpha)), 4)
    matrix = np.full((limit // 2 + 1, limit // 2 + 1), np.nan)
    for equal_axis, free_axis, transpose in ((y, x, False), (x, y, True)):
        for size in range(2, limit // 2 + 1):
            columns = limit // size if estimator == "mic_approx" else min(size, limit // size)
            if columns < 2:
                continue
            info = optimise_free_axis(free_axis, equipartition(equal_axis, size), size, columns, clumps_factor)
            for k in range(2, columns + 1):
                cell = (size, k) if transpose else (k, size)
                matrix[cell] = np.fmax(matrix[cell], min(info[k] / np.log(min(k, size)), 1.0))
    return matrix


def information_coefficients(first: np.ndarray, second: np.ndarray, *, alpha: float = 0.6, clumps_factor: int = 15,
                             estimator: Estimator = "mic_approx") -> InformationCoefficients:
    """Return MIC_e (in [0, 1]) and TIC_e (normalised in [0, 1], and summed) of two columns [N].

    Symmetric in its arguments up to the equipartitions' tie handling. ValueError on NaN or
    infinite values, unequal lengths or fewer than 4 rows.
    """
    matrix = characteristic_matrix(first, second, alpha=alpha, clumps_factor=clumps_factor, estimator=estimator)
    entries = matrix[np.isfinite(matrix)]
    return InformationCoefficients(mic=float(entries.max()), tic=float(entries.mean()), tic_total=float(entries.sum()))
