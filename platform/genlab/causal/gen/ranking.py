"""Ranking candidate graphs by out-of-distribution error, with a parsimony tie-break.

Input per candidate: OOD errors float [S, C] (seeds x splits). A candidate's score in seed s
is its mean over the splits; the ranking uses the mean over seeds. Ranks are assigned one at
a time: among the candidates left, the one with the lowest mean is the reference, and every
candidate whose paired gap to it (over seeds) is within one standard error is tied with it;
the tied candidate with the fewest edges takes the next rank (spec 5.5, decision rule).

`tested_rank_order` is the same procedure with "tied" meaning "not significantly worse than the
reference" (one-sided paired Wilcoxon signed-rank test over seeds at level alpha): with many
candidates, a one-standard-error margin is crossed by chance by some supergraph of the truth
(each has about a 1 in 6 chance), a significance margin far less often.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest, wilcoxon

from genlab.causal.candidates import Distance
from genlab.causal.graph import CausalGraph


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's graph, distance to the truth and errors (float [S, C], standardised units^2)."""

    name: str
    graph: CausalGraph
    distance: Distance
    ood_mse: np.ndarray
    train_mse: np.ndarray

    @property
    def per_seed(self) -> np.ndarray:
        """Return the OOD error of each seed (mean over splits), float [S]."""
        return self.ood_mse.mean(axis=1)


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Return the mean of `values` [S] and its standard error (0 for a single value)."""
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), se


def _within_one_se(gap: np.ndarray) -> bool:
    """True if the mean paired gap [S] is at most one standard error above 0."""
    mean, se = mean_and_se(gap)
    return mean <= se


def rank_order(results: list[CandidateResult]) -> list[CandidateResult]:
    """Return `results` in rank order (best first) under the one-standard-error parsimony rule."""
    left, ordered = list(results), []
    while left:
        reference = min(left, key=lambda r: r.per_seed.mean())
        tied = [r for r in left if _within_one_se(r.per_seed - reference.per_seed)]
        pick = min(tied, key=lambda r: (r.graph.num_edges, r.per_seed.mean()))
        ordered.append(pick)
        left.remove(pick)
    return ordered


def worse_p_value(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Return the one-sided Wilcoxon signed-rank p-value of H1 "candidate errors [S] exceed the reference's"."""
    if np.all(candidate == reference):
        return 1.0
    return float(wilcoxon(candidate - reference, alternative="greater").pvalue)


def tested_rank_order(results: list[CandidateResult], alpha: float) -> list[CandidateResult]:
    """Return `results` in rank order under the significance parsimony rule (see the module docstring)."""
    left, ordered = list(results), []
    while left:
        reference = min(left, key=lambda r: r.per_seed.mean())
        tied = [r for r in left if worse_p_value(r.per_seed, reference.per_seed) >= alpha]
        pick = min(tied, key=lambda r: (r.graph.num_edges, r.per_seed.mean()))
        ordered.append(pick)
        left.remove(pick)
    return ordered


def ranking_table(results: list[CandidateResult], true_name: str) -> list[dict[str, Any]]:
    """Return one row per candidate in rank order: rank, errors (mean, s.e. over seeds), gap to truth.

    `gap_to_true` is the mean over seeds of (candidate - true) OOD error with its s.e.;
    `p_true_better` the fraction of seeds where the true graph's error is lower.
    """
    truth = next(r for r in results if r.name == true_name).per_seed
    rows = []
    for rank, result in enumerate(rank_order(results), start=1):
        mean, se = mean_and_se(result.per_seed)
        gap, gap_se = mean_and_se(result.per_seed - truth)
        rows.append({"rank": rank, "name": result.name, "ood_mse": mean, "ood_mse_se": se,
                     "gap_to_true": gap, "gap_to_true_se": gap_se,
                     "p_true_better": None if result.name == true_name else float(np.mean(truth < result.per_seed)),
                     "train_mse": float(result.train_mse.mean()), "num_edges": result.graph.num_edges,
                     "shd": result.distance.shd, "missing": result.distance.missing, "extra": result.distance.extra,
                     "edges": " ".join(f"{a}->{b}" for a, b in result.graph.edges)})
    return rows


def summarize(results: list[CandidateResult], true_name: str) -> dict[str, Any]:
    """Return the test's summary: the ranking, the true graph's rank, and how often it beats H- candidates.

    `true_beats_missing_or_reversed` is the fraction of seeds in which the true graph's OOD
    error is below that of every candidate missing or reversing a true edge (None if there
    is no such candidate). `top_two_sign_test_p` is the two-sided sign-test p-value of rank 1
    vs rank 2 over seeds.
    """
    rows = ranking_table(results, true_name)
    by_name = {r.name: r for r in results}
    truth = by_name[true_name].per_seed
    wrong = [r.per_seed for r in results if r.distance.missing > 0]
    beats = None if not wrong else float(np.mean(np.all([truth < w for w in wrong], axis=0)))
    first, second = (by_name[row["name"]].per_seed for row in rows[:2]) if len(rows) > 1 else (truth, truth)
    wins, trials = int(np.sum(first < second)), int(np.sum(first != second))
    return {"true_graph": true_name, "true_graph_rank": next(row["rank"] for row in rows if row["name"] == true_name),
            "num_candidates": len(rows), "num_seeds": len(truth), "true_beats_missing_or_reversed": beats,
            "top_two_sign_test_p": float(binomtest(wins, trials).pvalue) if trials else 1.0, "ranking": rows}
