"""Greedy maximisation of the facility-location function, the coreset selection EPIC runs per class.

F(S) = sum_i max_{j in S} s_ij for a non-negative similarity s (here s_ij = max d - d_ij from the
euclidean distances d, as in CRAIG, Mirzasoleiman et al. 2020, which EPIC builds on). F is monotone
submodular, so the greedy choice (add the j of largest marginal gain
F(S + j) - F(S) = sum_i max(0, s_ij - max_{k in S} s_ik)) is within 1 - 1/e of the optimum. Lazy
greedy (submodlib's LazyGreedy, the papers' setting) returns the same set: it only skips
recomputing gains that cannot win; here every gain is recomputed at once, as one tensor operation.
"""

from __future__ import annotations

import torch


def euclidean_similarity(points: torch.Tensor) -> torch.Tensor:
    """Return s_ij = max d - d_ij (float [n, n], >= 0) for the euclidean distances d of `points` [n, p]."""
    distances = torch.cdist(points, points)
    return distances.max() - distances


def greedy_facility_location(similarity: torch.Tensor, budget: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (the `budget` chosen columns in the order greedy picked them, int64; their marginal gains, float).

    `similarity` is [n, n], non-negative; `budget` is clipped to n.
    """
    n = similarity.shape[0]
    cover = torch.zeros(n, dtype=similarity.dtype, device=similarity.device)
    taken = torch.zeros(n, dtype=torch.bool, device=similarity.device)
    chosen, gains = [], []
    for _ in range(min(budget, n)):
        gain = (similarity - cover[:, None]).clamp_min(0).sum(0).masked_fill(taken, -1.0)
        best = int(gain.argmax())
        chosen.append(best)
        gains.append(float(gain[best]))
        taken[best] = True
        cover = torch.maximum(cover, similarity[:, best])
    return torch.tensor(chosen, dtype=torch.int64), torch.tensor(gains, dtype=similarity.dtype)


def facility_location_value(similarity: torch.Tensor, chosen: torch.Tensor) -> float:
    """Return F(chosen) = sum_i max_{j in chosen} s_ij (0 for an empty set)."""
    if len(chosen) == 0:
        return 0.0
    return float(similarity[:, chosen].max(dim=1).values.sum())
