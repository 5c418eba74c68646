"""The power study's record (`bench/causal_power.py --out DIR`): an MLflow run and the files beside it.

The run holds the study's settings as params, its rates as metrics, drawings of every true graph
and of each candidate that ranked above the truth on the deliberate split, and the report
(summary.json with every graph's result, power.md with one row per graph). Its dataset hash is
the hash of every table the study drew (regenerated from the seeds, not copied from the settings).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from genlab.causal.drawing import draw_graph
from genlab.causal.gen.power import PowerSettings, StudyGraph, study_graph_setup
from genlab.causal.gen.report import markdown_table
from genlab.causal.gen.tables import tables_hash
from genlab.causal.job import job_run, write_reports

COLUMNS = ["name", "nodes", "edges", "num_candidates", "true_rank_deliberate", "first_deliberate",
           "true_rank_random", "first_random"]


def study_hash(setups: list[StudyGraph]) -> str:
    """Return the sha256 hex digest of the graphs' tables (in order)."""
    digest = hashlib.sha256()
    for setup in setups:
        digest.update(tables_hash(setup.tables).encode())
    return digest.hexdigest()


def record_power_study(settings: PowerSettings, result: dict[str, Any], out_dir: Path) -> Path:
    """Log the study `result` (run_power_study's) to MLflow with its drawings and write summary.json and
    power.md to `out_dir`; return summary.json's path."""
    graphs = sorted(result["per_graph"], key=lambda g: g["index"])
    setups = [study_graph_setup(settings, graph["index"]) for graph in graphs]
    out_dir = Path(out_dir)
    with job_run("causal-power", "power-study", config=settings, seed=settings.seed,
                 dataset_hash=study_hash(setups)) as run:
        run.log_metric_tree({k: v for k, v in result.items() if k != "per_graph"})
        for graph, setup in zip(graphs, setups):
            ranks = f"true rank {graph['true_rank_deliberate']} deliberate, {graph['true_rank_random']} random"
            drawn = [(setup.truth, f"{graph['name']}: {ranks}", "truth")]
            if graph["first_deliberate"] != "true":
                winner = next(c for c in setup.candidates if c.name == graph["first_deliberate"])
                drawn.append((winner, f"first (deliberate): {winner.name}", "first-deliberate"))
            for candidate, title, suffix in drawn:
                path = draw_graph(candidate, setup.truth, out_dir / "graphs" / f"{graph['name']}-{suffix}.png",
                                  title=title)
                run.client.log_artifact(run.run_id, str(path), "graphs")
        summary = {**result, "mlflow_run_id": run.run_id}
        return write_reports(run, out_dir, summary, {"power.md": markdown_table(graphs, COLUMNS)})
