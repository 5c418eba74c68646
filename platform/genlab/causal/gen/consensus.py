"""`jobs/causal_sachs.py`: the structural hypothesis test on real data, the Sachs consensus graph vs its edits.

The Sachs et al. protein-signalling data (genlab.causal.sachs; `num_samples` rows drawn per
seed from the 7,466) and their consensus graph (conf/graphs/sachs.yaml) compete with every
acyclic single-edge edit of it. Each candidate is scored as in the power study
(genlab.causal.gen.power.score_candidates: one batched Causal Gen over candidates x seeds x
splits) on the deliberate tail splits of `split.variables` and, as the contrast, on random
splits of the same size, and ranked by both tie rules of genlab.causal.gen.ranking. The
consensus graph's rank is reported as measured; so are the edits significantly better or worse
than it (one-sided paired Wilcoxon over seeds at `alpha`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import Field

from genlab.causal.candidates import apply_edits, single_edits
from genlab.causal.drawing import draw_graph
from genlab.causal.gen.config import DataSettings
from genlab.causal.gen.power import SPLIT_KINDS, score_candidates
from genlab.causal.gen.ranking import rank_order, tested_rank_order, worse_p_value
from genlab.causal.gen.report import console_table, csv_text, markdown_table
from genlab.causal.gen.tables import make_tables, tables_hash
from genlab.causal.gen.train import TrainSettings
from genlab.causal.graph import resolve_graph
from genlab.causal.job import job_run, write_reports
from genlab.causal.splits import SplitSettings, split_columns
from genlab.config import StrictModel
from genlab.models.causal import CausalGenSettings
from genlab.runtime import print_progress

COLUMNS = ["rank", "name", "ood_mse", "gap_to_consensus", "p_worse_than_consensus", "p_better_than_consensus", "shd",
           "missing", "extra"]
DRAWN = 4  # the consensus graph and the first candidates of the deliberate ranking drawn to MLflow


class SachsConfig(StrictModel):
    """`jobs/causal_sachs.py`: rank the Sachs consensus graph against its single-edge edits."""

    experiment: str = "causal-sachs"
    graph: str = "conf/graphs/sachs.yaml"  # the consensus DAG (nodes = the data's columns)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5], min_length=6)  # row draws: paired test
    num_samples: int = Field(500, ge=50)  # rows drawn per seed from the 7,466
    split: SplitSettings = Field(default_factory=lambda: SplitSettings(variables=["PKA", "plcg"]))  # tails held out
    model: CausalGenSettings = Field(default_factory=lambda: CausalGenSettings(hidden=[16, 16]))
    train: TrainSettings = Field(default_factory=lambda: TrainSettings(epochs=30, lr=1e-2))
    alpha: float = Field(0.05, gt=0, lt=1)


def epoch_progress(label: str, epochs: int, every: int = 5) -> Callable[[int, np.ndarray], None]:
    """Return an on_epoch callback printing `label`, the epoch and the mean train loss every `every` epochs."""
    def report(epoch: int, losses: np.ndarray) -> None:
        if (epoch + 1) % every == 0 or epoch + 1 == epochs:
            print_progress(f"{label}: epoch {epoch + 1}/{epochs}, mean train loss {losses.mean():.4f}")
    return report


def run_sachs_ranking(cfg: SachsConfig, out_dir: Path) -> dict[str, Any]:
    """Score the consensus graph and every single edit on both split kinds; return summary.json's content."""
    truth = resolve_graph(cfg.graph)
    candidates = [truth.with_edges(truth.edges, "consensus"),
                  *(apply_edits(truth, [edit], str(edit)) for edit in single_edits(truth))]
    tables = make_tables(DataSettings(kind="sachs", num_samples=cfg.num_samples), truth, cfg.seeds)
    columns = split_columns(truth.nodes, truth.exogenous, cfg.split)
    out_dir = Path(out_dir)
    with job_run(cfg.experiment, f"sachs-{truth.name}", config=cfg, seed=cfg.seeds[0],
                 dataset_hash=tables_hash(tables)) as run:
        print(f"[genlab] Sachs: {len(candidates)} candidates, {cfg.num_samples} rows x {len(cfg.seeds)} seeds, "
              f"splits on {', '.join(truth.nodes[c] for c in columns)}", flush=True)
        summary: dict[str, Any] = {"num_candidates": len(candidates), "seeds": cfg.seeds, "alpha": cfg.alpha,
                                   "splits": [truth.nodes[c] for c in columns]}
        tables_text = {}
        for name, kind in SPLIT_KINDS.items():
            results = score_candidates(candidates, truth, tables, columns, cfg.model, cfg.train, cfg.split.quantile,
                                       kind, epoch_progress(f"{name} split", cfg.train.epochs))
            consensus = results[0].per_seed
            ordered = tested_rank_order(results, cfg.alpha)
            rows = [{"rank": rank, "name": r.name, "ood_mse": float(r.per_seed.mean()),
                     "gap_to_consensus": float((r.per_seed - consensus).mean()),
                     "p_worse_than_consensus": None if r.name == "consensus" else worse_p_value(r.per_seed, consensus),
                     "p_better_than_consensus": None if r.name == "consensus" else worse_p_value(consensus, r.per_seed),
                     "shd": r.distance.shd, "missing": r.distance.missing, "extra": r.distance.extra}
                    for rank, r in enumerate(ordered, start=1)]
            summary[f"consensus_rank_{name}"] = next(row["rank"] for row in rows if row["name"] == "consensus")
            summary[f"consensus_rank_se_rule_{name}"] = [r.name for r in rank_order(results)].index("consensus") + 1
            summary[f"edits_better_than_consensus_{name}"] = sum(
                row["p_better_than_consensus"] is not None and row["p_better_than_consensus"] < cfg.alpha for row in rows)
            summary[f"edits_worse_than_consensus_{name}"] = sum(
                row["p_worse_than_consensus"] is not None and row["p_worse_than_consensus"] < cfg.alpha for row in rows)
            summary[f"top_{name}"] = [row["name"] for row in rows[:5]]
            summary[f"ranking_{name}"] = rows
            tables_text[f"ranking_{name}.md"] = markdown_table(rows, COLUMNS)
            tables_text[f"ranking_{name}.csv"] = csv_text(rows, COLUMNS)
            print(f"\n[genlab] {name} split: consensus rank {summary[f'consensus_rank_{name}']} of {len(rows)}")
            print(console_table(rows[:10], COLUMNS), flush=True)
            if name == "deliberate":
                by_name = {g.name: g for g in candidates}
                drawn = ["consensus"] + [row["name"] for row in rows if row["name"] != "consensus"][:DRAWN - 1]
                for index, graph_name in enumerate(drawn):
                    path = draw_graph(by_name[graph_name], truth, out_dir / "graphs" / f"{index:02d}.png",
                                      title=f"{graph_name} (rank {next(r['rank'] for r in rows if r['name'] == graph_name)})")
                    run.client.log_artifact(run.run_id, str(path), "graphs")
        run.log_metrics({key: float(value) for key, value in summary.items()
                         if key.startswith(("consensus_rank", "edits_")) and isinstance(value, int)})
        summary["mlflow_run_id"] = run.run_id
        write_reports(run, out_dir, summary, tables_text)
    return summary
