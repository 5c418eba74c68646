"""Causal models vs non-causal baselines on the true graph's data, scored out of distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genlab.causal.drawing import draw_graph
from genlab.causal.gen.config import CausalTrainConfig
from genlab.causal.gen.ranking import mean_and_se
from genlab.causal.gen.report import console_table, csv_text, markdown_table
from genlab.causal.gen.runner import CausalJob, causal_job
from genlab.causal.gen.trials import CausalTrialCallback, trial_spec
from genlab.causal.graph import resolve_graph
from genlab.causal.job import write_reports
from genlab.causal.pendulum import grid_indices, make_pendulum, pendulum_labels, pendulum_split
from genlab.visualize import save_image_grid

CAUSAL_KINDS = ("causal_gen", "causal_variational_gen")
COLUMNS = ["model", "causal", "ood_mse", "ood_mse_se", "train_mse", "status"]
RUN_METRICS = {"ood_mse_mean": "ood_mse", "ood_mse_se": "ood_mse_se"}  # MLflow name -> row key, per model run
GRID_SCENES = 8  # pendulum scenes per row of the train / held-out image grid


def model_names(cfg: CausalTrainConfig) -> list[str]:
    """Return one trial name per configured model: its kind, suffixed -1, -2 .. when a kind repeats."""
    kinds = [model.kind for model in cfg.models]
    counts: dict[str, int] = {}
    names = []
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
        names.append(kind if kinds.count(kind) == 1 else f"{kind}-{counts[kind]}")
    return names


def _pendulum_grid(cfg: CausalTrainConfig, job: CausalJob) -> None:
    """Log a grid of pendulum scenes to the parent run: training region vs held-out (OOD) region."""
    settings, seed = cfg.data.pendulum, cfg.seeds[0]
    test = pendulum_split(pendulum_labels(*grid_indices(settings.grid), settings.label_noise_sd, seed), settings)
    rows = [np.flatnonzero(~test), np.flatnonzero(test)]
    picks = [side[np.linspace(0, len(side) - 1, GRID_SCENES).astype(int)] for side in rows]
    scenes = make_pendulum(settings, seed, rows=np.concatenate(picks))
    path = save_image_grid([scenes.images[:GRID_SCENES], scenes.images[GRID_SCENES:]], ["train", "held out"],
                           job.out_dir / "pendulum_split.png")
    job.run.client.log_artifact(job.run.run_id, str(path), "data")


def _model_row(job: CausalJob, callback: CausalTrialCallback, name: str, causal: bool) -> dict[str, Any]:
    """One model's results row (OOD error mean and s.e. over seeds, by split), logged to its MLflow run too."""
    row: dict[str, Any] = {"model": name, "causal": causal, "status": "FAILED"}
    if name in callback.finished:
        errors = callback.replica_errors[name]
        ood = job.per_seed(errors["ood_mse"])  # [seeds, splits]
        mean, se = mean_and_se(ood.mean(axis=1))
        row.update(status="FINISHED", ood_mse=mean, ood_mse_se=se, train_mse=float(errors["train_mse"].mean()),
                   ood_mse_by_split=dict(zip(job.split_names, ood.mean(axis=0).tolist())))
        job.log_row(callback.run_ids[name], row, RUN_METRICS)
    return row


def run_model_comparison(cfg: CausalTrainConfig, out_dir: Path) -> dict[str, Any]:
    """Train every configured model (one Tune trial each) and compare OOD errors; return summary.json's content.

    The summary has one row per model (`ood_mse` mean and s.e. over seeds, `ood_mse_by_split`),
    `best_causal`, `best_baseline` and `causal_beats_baselines` (the best causal model's mean
    OOD error is below every baseline's).
    """
    with causal_job(cfg, resolve_graph(cfg.graph), out_dir, "train") as job:
        drawing = draw_graph(job.graph, job.graph, job.out_dir / "graph.png", title=f"{job.graph.name} (true)")
        job.run.client.log_artifact(job.run.run_id, str(drawing), "graph")
        if cfg.data.kind == "pendulum":
            _pendulum_grid(cfg, job)
        names = model_names(cfg)
        specs = [trial_spec(name, model, job.graph.structural_prior(), {"model": name},
                            drawing if model.kind in CAUSAL_KINDS else None) for name, model in zip(names, cfg.models)]
        callback = job.run_trials(specs)
        rows = [_model_row(job, callback, name, model.kind in CAUSAL_KINDS) for name, model in zip(names, cfg.models)]
        done = [r for r in rows if r["status"] == "FINISHED"]
        causal = [r for r in done if r["causal"]]
        baselines = [r for r in done if not r["causal"]]
        best_causal = min(causal, key=lambda r: r["ood_mse"]) if causal else None
        best_baseline = min(baselines, key=lambda r: r["ood_mse"]) if baselines else None
        summary = {"models": rows, "seeds": job.seeds, "splits": job.split_names,
                   "best_causal": best_causal and best_causal["model"],
                   "best_baseline": best_baseline and best_baseline["model"],
                   "causal_beats_baselines": (best_causal["ood_mse"] < best_baseline["ood_mse"]
                                              if best_causal and best_baseline else None),
                   "all_finished": len(done) == len(rows), "mlflow_parent_run_id": job.run.run_id}
        job.run.finish_as(summary["all_finished"])
        print(console_table(rows, COLUMNS))
        print(f"\n[genlab] best causal {summary['best_causal']}, best baseline {summary['best_baseline']}")
        write_reports(job.run, job.out_dir, summary, {"models.md": markdown_table(rows, COLUMNS),
                                                       "models.csv": csv_text(rows, COLUMNS)})
    return summary
