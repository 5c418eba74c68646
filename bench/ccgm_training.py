"""CCGM's training claim: two-phase (causal, then generative with the gates frozen) vs joint training.

On the fairness SCM of the de-biasing story (MLP mechanisms, 5 dB, 2,000 training rows), a CCGM
is trained per seed with each schedule, and the CausalVAE-style baseline (joint, acyclicity
penalty at CausalVAE's weight, KL on eps) beside them. Per model and seed: the do() mean error
against the true SCM (genlab.causal.ccgm.metrics.intervention_fidelity, standardised units, with
its tolerance) and the counterfactual error against the true SCM's counterfactual with the rows'
own noise (counterfactual_fidelity; `counterfactual_change` is what changing nothing scores).

    python bench/ccgm_training.py --seeds 0 1 2          # about 10 min on 2 busy CPU cores

Last line: one JSON object {schedule: {intervention_mean_abs_error: [per seed], counterfactual_error: [...],
...}, "seeds": [...]} and the paired comparison two_phase vs joint per error: in how many seeds two-phase
is lower, the mean paired difference (two_phase - joint, standardised units) and the two-sided
Wilcoxon signed-rank p-value over seeds. With `--out DIR` the result is also an MLflow run
(experiment `ccgm-training`: each error per seed as a metric history, the means and the paired
comparison as metrics, summary.json under report/) and DIR/summary.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon

from genlab.causal.ccgm.config import CCGMDebiasConfig
from genlab.causal.ccgm.fit import fit_ccgm
from genlab.causal.ccgm.metrics import counterfactual_fidelity, intervention_fidelity, intervention_grid
from genlab.causal.ccgm.model import CCGM, CCGMConfig, graph_spec
from genlab.causal.ccgm.runner import load_data
from genlab.causal.job import job_run, write_reports

VARIANTS = {"two_phase": ("ccgm", "two_phase"), "joint": ("ccgm", "joint"), "causalvae": ("causalvae", "joint")}


def measure(variant: str, seed: int, num_samples: int) -> tuple[dict[str, float], str]:
    """Train one variant on seed `seed`'s data; return its do() and counterfactual errors (standardised units)
    and the data's hash."""
    layer, schedule = VARIANTS[variant]
    cfg = CCGMDebiasConfig(seed=seed)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"causal_layer": layer}),
                                 "train": cfg.train.model_copy(update={"schedule": schedule})})
    data = load_data(cfg)
    model = CCGM(CCGMConfig(graph=graph_spec(data.graph), settings=cfg.model, seed=seed))
    fit_ccgm(model, data.train_inputs, data.train_labels, cfg.train, seed=seed)
    raw = data.train_labels.double().numpy()
    grid = intervention_grid(raw, data.graph.nodes, cfg.evaluation.quantiles)
    fidelity = intervention_fidelity(model, data.scm, grid, train_rows=len(raw), scale=raw.std(axis=0),
                                     num_samples=num_samples, seed=seed)
    return {"intervention_mean_abs_error": fidelity["mean_abs_error"], "intervention_tolerance": fidelity["tolerance"],
            **counterfactual_fidelity(model, data.scm, grid, num_rows=1000, seed=seed)}, data.data_hash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-samples", type=int, default=5000, help="generated and true draws per do() cell")
    parser.add_argument("--out", type=Path, default=None, help="also record the result: MLflow run + DIR/summary.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    results: dict[str, dict[str, list[float]]] = {}
    hashes: dict[int, str] = {}
    for variant in VARIANTS:
        for seed in args.seeds:
            scores, hashes[seed] = measure(variant, seed, args.num_samples)
            print(f"[bench] {variant} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)
            for key, value in scores.items():
                results.setdefault(variant, {}).setdefault(key, []).append(value)
    comparison = {error: paired_comparison(np.array(results["two_phase"][error]), np.array(results["joint"][error]))
                  for error in ("intervention_mean_abs_error", "counterfactual_error")}
    summary = {**results, "seeds": args.seeds, "two_phase_vs_joint": comparison, "seconds": round(time.time() - start, 1)}
    if args.out:
        record(summary, args, hashlib.sha256("".join(hashes[seed] for seed in args.seeds).encode()).hexdigest())
    print(json.dumps(summary))


def record(summary: dict, args: argparse.Namespace, dataset_hash: str) -> None:
    """Log the comparison to MLflow (per-seed errors as metric histories, steps 1..n; means; paired tests) and
    write args.out/summary.json."""
    config = {"seeds": args.seeds, "num_samples": args.num_samples, "variants": VARIANTS, "data": CCGMDebiasConfig()}
    with job_run("ccgm-training", "two-phase-vs-joint", config=config, seed=args.seeds[0],
                 dataset_hash=dataset_hash) as run:
        means = {variant: {key: float(np.mean(values)) for key, values in summary[variant].items()} for variant in VARIANTS}
        run.log_metric_tree({**{k: v for k, v in summary.items() if k != "seeds"}, "mean": means})
        write_reports(run, args.out, {**summary, "mlflow_run_id": run.run_id})


def paired_comparison(two_phase: np.ndarray, joint: np.ndarray) -> dict[str, float | int | None]:
    """Return how often two-phase errors [S] are lower, the mean paired difference (two_phase - joint) and the
    two-sided Wilcoxon signed-rank p-value (None with fewer than 2 seeds)."""
    difference = two_phase - joint
    p_value = float(wilcoxon(difference).pvalue) if len(difference) > 1 and np.any(difference) else None
    return {"two_phase_lower_in_seeds": int((difference < 0).sum()), "mean_difference": float(difference.mean()),
            "wilcoxon_p": p_value}


if __name__ == "__main__":
    main()
