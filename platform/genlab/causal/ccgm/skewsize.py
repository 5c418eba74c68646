"""SkewSize: how strongly a classifier's mistakes depend on a spurious attribute.

From Albuquerque et al., "Evaluating Model Bias Requires Characterizing its Mistakes" (ICML
2024). For each true class y, take the examples of class y and cross-tabulate the predicted
class against the spurious attribute's value; the association in that contingency table is
measured by the effect size of a chi-squared test of independence, Cramer's V =
sqrt(chi2 / (N_y (min(rows, cols) - 1))). SkewSize aggregates the per-class effect sizes; we
take their mean (the paper's default summary), weighting classes equally. 0 = predictions
within each class are independent of the attribute; 1 = the attribute decides them.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2_contingency


def cramers_v(first: np.ndarray, second: np.ndarray) -> float:
    """Return Cramer's V in [0, 1] between two categorical arrays [N] (0 when either is constant)."""
    _, row = np.unique(first, return_inverse=True)
    _, col = np.unique(second, return_inverse=True)
    table = np.zeros((row.max() + 1, col.max() + 1))
    np.add.at(table, (row, col), 1.0)
    if min(table.shape) < 2:
        return 0.0
    chi2 = chi2_contingency(table, correction=False)[0]
    return float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1))))


def skewsize(labels: np.ndarray, predictions: np.ndarray, attribute: np.ndarray) -> float:
    """Return SkewSize in [0, 1]: the mean over true classes of Cramer's V(prediction, attribute) within the class."""
    return float(np.mean([cramers_v(predictions[labels == y], attribute[labels == y]) for y in np.unique(labels)]))
