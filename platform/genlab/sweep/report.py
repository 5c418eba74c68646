"""Step 5 of the defense sweep, the report: the results table (console, markdown, CSV), the means over
seeds, the Pareto plot (genlab.sweep.pareto) and `summary.json`, written to the output directory and
the sweep's MLflow run. Purifiers and defenses (`kind`) sit side by side, each with its cost in
seconds and, for defenses that drop rows, their detection precision and recall.

Trials a scheduler stopped early (`stopped_early`, ASHA) are listed in the table but left out
of the means and the Pareto front: their metrics come from fewer epochs than the others'.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from genlab.fileio import write_json_atomic, write_text_atomic
from genlab.sweep.pareto import pareto_plot
from genlab.tracking import TrackedRun

COLUMNS = ("attack", "kind", "purifier", "purifier_params", "seed", "natural_accuracy", "poison_success_rate",
           "cost_s", "detection_precision", "detection_recall", "purify_images_per_s", "status", "stopped_early")
MEAN_METRICS = ("natural_accuracy", "poison_success_rate", "cost_s", "detection_precision", "detection_recall")


def params_text(params: dict[str, Any], prefix: str = "") -> str:
    """Return purifier params as `k=v` pairs, nested settings as dotted keys (`ebm.langevin_steps=[150]`)."""
    pairs = []
    for key, value in params.items():
        if isinstance(value, dict):
            pairs.append(params_text({k: v for k, v in value.items() if k != "name"}, f"{prefix}{key}."))
        else:
            pairs.append(f"{prefix}{key}={value}")
    return ",".join(pair for pair in pairs if pair)


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    if column == "purifier_params":
        return params_text(value) or "-"
    if column in ("natural_accuracy", "poison_success_rate", "detection_precision", "detection_recall"):
        return f"{value:.4f}"
    if column == "cost_s":
        return f"{value:.1f}"
    if column == "purify_images_per_s":
        return f"{value:.1f}"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Return the results as a fixed-width console table."""
    cells = [[_cell(row, c) for c in COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float | None]:
    """Return (mean, half-width of the Student-t confidence interval); the half-width is None for n < 2."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    sem = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * sem)


def full_length(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the rows of trials that finished every epoch (metrics present, not stopped early)."""
    return [r for r in rows if r.get("natural_accuracy") is not None and not r.get("stopped_early")]


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one row per (attack, purifier setting) over its full-length seeds: means and 95% CI half-widths."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in full_length(rows):
        key = (row["attack"], row["purifier"], _cell(row, "purifier_params"))
        groups.setdefault(key, []).append(row)
    out = []
    for members in groups.values():
        entry = {k: members[0].get(k) for k in ("attack", "kind", "purifier", "purifier_params", "purify_images_per_s")}
        entry["seeds"] = len(members)
        for metric in MEAN_METRICS:
            values = [m[metric] for m in members if m.get(metric) is not None]
            if values:
                entry[f"{metric}_mean"], entry[f"{metric}_ci95"] = mean_ci(values)
        out.append(entry)
    return out


def _mean_cell(entry: dict[str, Any], metric: str) -> str:
    if f"{metric}_mean" not in entry:
        return "-"
    ci = entry[f"{metric}_ci95"]
    return f"{entry[f'{metric}_mean']:.4f}" + ("" if ci is None else f" ± {ci:.4f}")


def markdown_table(rows: list[dict[str, Any]], aggregates: list[dict[str, Any]]) -> str:
    """Return the per-trial results and the per-setting means (95% CI over seeds) as markdown tables."""
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    trials = head + "".join("| " + " | ".join(_cell(row, c) for c in COLUMNS) + " |\n" for row in rows)
    means = ("| attack | kind | purifier | purifier_params | seeds | " + " | ".join(MEAN_METRICS) + " |\n"
             "|---|---|---|---|---|" + "---|" * len(MEAN_METRICS) + "\n" + "".join(
                 f"| {e['attack']} | {e.get('kind') or '-'} | {e['purifier']} | {_cell(e, 'purifier_params')} | "
                 f"{e['seeds']} | " + " | ".join(_mean_cell(e, m) for m in MEAN_METRICS) + " |\n" for e in aggregates))
    return f"## Trials\n\n{trials}\n## Means over seeds (95% CI)\n\n{means}"


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write the results as CSV; return the path."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows([[_cell(row, c) for c in COLUMNS] for row in rows])
    return path


def write_report(run: TrackedRun, rows: list[dict[str, Any]], purification: dict[str, int], out_dir: Path) -> None:
    """Write summary.json, results CSV/markdown and the Pareto plot to `out_dir`; log them (and `purification`) to `run`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    aggregates = aggregate(rows)
    write_json_atomic(out_dir / "summary.json", {"trials": rows, "aggregates": aggregates, "purification": purification})
    run.log_metrics(purification)
    write_text_atomic(out_dir / "results.md", markdown_table(rows, aggregates))
    for path in (write_csv(rows, out_dir / "results.csv"), out_dir / "results.md", out_dir / "summary.json",
                 pareto_plot(aggregates, out_dir / "pareto.png")):
        run.client.log_artifact(run.run_id, str(path), "report")
