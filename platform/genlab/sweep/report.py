"""Step 5 of the defense sweep, the report: the results tables (console, markdown, CSV), each setting's n,
means and 95% CIs over its trials (target classes x classifier seeds; Clopper-Pearson for targeted
attacks), the Pareto plot (genlab.sweep.pareto) and `summary.json`, written to the output directory and
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

from genlab.attacks.targeted.targeted_eval import success_rate
from genlab.fileio import write_json_atomic, write_text_atomic
from genlab.sweep.pareto import pareto_plot
from genlab.tracking import TrackedRun

COLUMNS = ("attack", "target_class", "target_rows", "kind", "purifier", "purifier_params", "seed",
           "natural_accuracy", "poison_success_rate", "poison_success_rate_amplified", "cost_s", "detection_precision",
           "detection_recall", "purify_images_per_s", "status", "stopped_early")
MEAN_METRICS = ("natural_accuracy", "cost_s", "detection_precision", "detection_recall")  # Student-t mean ± half-width


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
    if column in ("natural_accuracy", "poison_success_rate", "poison_success_rate_amplified", "detection_precision",
                  "detection_recall"):
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


def _interval(values: list[float]) -> dict[str, float | None]:
    """Return {mean, ci_low, ci_high} of per-trial fractions: a Student-t 95% interval over the trials,
    clipped to [0, 1] (None for one trial)."""
    mean, half = mean_ci(values)
    return {"mean": mean, "ci_low": None if half is None else max(0.0, mean - half),
            "ci_high": None if half is None else min(1.0, mean + half)}


def _poison_statistics(members: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the poison success of one cell: its mean, n, ci_low, ci_high (and max over target classes).

    Targeted attacks (rows with `targets`): successes / trials over every target image of every
    trial, with a Clopper-Pearson 95% interval. Backdoors: the mean over trials (one per target
    class and classifier seed: each has its own crafting, purification noise on its poisons and
    classifier seed) with a Student-t 95% interval, and `max_over_classes`, the worst class's
    mean over seeds (PureGen's Max Poison Success).
    """
    if members[0].get("targets") is not None:
        trials = sum(m["targets"] for m in members)
        successes = sum(round(m["poison_success_rate"] * m["targets"]) for m in members)
        rate = success_rate([True] * successes + [False] * (trials - successes))
        return {"poison_success_rate_mean": rate.rate, "n": trials, "successes": successes, "ci_low": rate.low,
                "ci_high": rate.high, "ci_method": "clopper-pearson", "max_over_classes": None}
    interval = _interval([m["poison_success_rate"] for m in members])
    by_class: dict[Any, list[float]] = {}
    for m in members:
        by_class.setdefault(m.get("target_class"), []).append(m["poison_success_rate"])
    out = {"poison_success_rate_mean": interval["mean"], "n": len(members), "ci_low": interval["ci_low"],
           "ci_high": interval["ci_high"], "ci_method": "student-t over trials",
           "max_over_classes": max(float(np.mean(v)) for v in by_class.values())}
    amplified = [m["poison_success_rate_amplified"] for m in members if m.get("poison_success_rate_amplified") is not None]
    if amplified:
        out["poison_success_rate_amplified_mean"] = float(np.mean(amplified))
    return out


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one row per (attack, purifier setting) over its full-length trials (target classes x seeds).

    Each carries its `kind` (purifier or defense), `n`, `ci_low`, `ci_high` of the poison success
    (`_poison_statistics`), the Student-t means and 95% half-widths (`<metric>_mean`, `<metric>_ci95`) of
    the natural accuracy, `cost_s` and, where present, the detection scores, the accuracy's 95% CI
    (`natural_accuracy_ci_low`/`_high`), `seeds` (distinct classifier seeds), `target_classes`, the
    `generative_training` statement, and against the attack's undefended cell (`none`)
    `success_ratio` (defended / undefended success) and `accuracy_loss_points` (undefended minus
    defended accuracy, percentage points); `halves` is success_ratio <= 0.5 with at most 3 points lost.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in full_length(rows):
        key = (row["attack"], row["purifier"], _cell(row, "purifier_params"))
        groups.setdefault(key, []).append(row)
    out = []
    for members in groups.values():
        entry = {k: members[0].get(k) for k in ("attack", "kind", "purifier", "purifier_params", "purify_images_per_s",
                                                 "generative_training")}
        entry["seeds"] = len({m["seed"] for m in members})
        entry["target_classes"] = sorted({m["target_class"] for m in members if m.get("target_class") is not None})
        for metric in MEAN_METRICS:
            values = [m[metric] for m in members if m.get(metric) is not None]
            if values:
                entry[f"{metric}_mean"], entry[f"{metric}_ci95"] = mean_ci(values)
        accuracy = _interval([m["natural_accuracy"] for m in members])
        entry["natural_accuracy_ci_low"], entry["natural_accuracy_ci_high"] = accuracy["ci_low"], accuracy["ci_high"]
        entry.update(_poison_statistics(members))
        out.append(entry)
    undefended = {e["attack"]: e for e in out if e["purifier"] == "none"}
    for entry in out:
        base = undefended.get(entry["attack"])
        if base is None or entry is base:
            continue
        entry["success_ratio"] = (entry["poison_success_rate_mean"] / base["poison_success_rate_mean"]
                                  if base["poison_success_rate_mean"] > 0 else None)
        entry["accuracy_loss_points"] = 100 * (base["natural_accuracy_mean"] - entry["natural_accuracy_mean"])
        entry["halves"] = entry["success_ratio"] is not None and entry["success_ratio"] <= 0.5 \
            and entry["accuracy_loss_points"] <= 3
    return out


def _mean_cell(entry: dict[str, Any], metric: str) -> str:
    if f"{metric}_mean" not in entry:
        return "-"
    ci = entry[f"{metric}_ci95"]
    return f"{entry[f'{metric}_mean']:.4f}" + ("" if ci is None else f" ± {ci:.4f}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _ci_text(low: float | None, high: float | None) -> str:
    return "-" if low is None else f"[{100 * low:.1f}, {100 * high:.1f}]"


MEANS_COLUMNS = ("attack", "kind", "purifier", "purifier_params", "n", "natural_accuracy % [95% CI]",
                 "poison success % [95% CI]", "max over classes %", "x3 trigger %", "success ratio vs none",
                 "accuracy loss (points)", "halves", "cost_s", "detection_precision", "detection_recall",
                 "generative training data")


def _means_cells(e: dict[str, Any]) -> list[str]:
    successes = f" ({e['successes']}/{e['n']})" if e.get("successes") is not None else ""
    ratio = e.get("success_ratio")
    loss = e.get("accuracy_loss_points")
    return [e["attack"], e.get("kind") or "-", e["purifier"], _cell(e, "purifier_params"), str(e["n"]),
            f"{_percent(e['natural_accuracy_mean'])} {_ci_text(e['natural_accuracy_ci_low'], e['natural_accuracy_ci_high'])}",
            f"{_percent(e['poison_success_rate_mean'])}{successes} {_ci_text(e['ci_low'], e['ci_high'])}",
            _percent(e.get("max_over_classes")), _percent(e.get("poison_success_rate_amplified_mean")),
            "-" if ratio is None else f"{ratio:.2f}", "-" if loss is None else f"{loss:.1f}",
            {True: "yes", False: "no"}.get(e.get("halves"), "-"),
            *(_mean_cell(e, m) for m in ("cost_s", "detection_precision", "detection_recall")),
            e.get("generative_training") or "-"]


def format_means(aggregates: list[dict[str, Any]]) -> str:
    """Return the per-setting results (n, means and 95% CIs over trials) as a fixed-width console table."""
    cells = [_means_cells(e) for e in aggregates]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(MEANS_COLUMNS)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(MEANS_COLUMNS), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def markdown_table(rows: list[dict[str, Any]], aggregates: list[dict[str, Any]]) -> str:
    """Return the per-setting results (n, means, 95% CIs over target classes x seeds) and the per-trial results
    as markdown tables."""
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    trials = head + "".join("| " + " | ".join(_cell(row, c) for c in COLUMNS) + " |\n" for row in rows)
    means = ("| " + " | ".join(MEANS_COLUMNS) + " |\n|" + "---|" * len(MEANS_COLUMNS) + "\n"
             + "".join("| " + " | ".join(_means_cells(e)) + " |\n" for e in aggregates))
    return f"## Results per setting (95% CI over trials: target classes x classifier seeds)\n\n{means}\n## Trials\n\n{trials}"


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write the results as CSV; return the path."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows([[_cell(row, c) for c in COLUMNS] for row in rows])
    return path


def write_report(run: TrackedRun, rows: list[dict[str, Any]], purification: dict[str, int], out_dir: Path,
                 data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Write summary.json, results CSV/markdown and the Pareto plot to `out_dir`; log them (and `purification`) to
    `run`; return the per-setting aggregates (`aggregate`).

    `data` (the pool split and the `generative_training` block) is written into summary.json as given.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    aggregates = aggregate(rows)
    write_json_atomic(out_dir / "summary.json", {"trials": rows, "aggregates": aggregates, "purification": purification,
                                                 **(data or {})})
    run.log_metrics(purification)
    write_text_atomic(out_dir / "results.md", markdown_table(rows, aggregates))
    for path in (write_csv(rows, out_dir / "results.csv"), out_dir / "results.md", out_dir / "summary.json",
                 pareto_plot(aggregates, out_dir / "pareto.png")):
        run.client.log_artifact(run.run_id, str(path), "report")
    return aggregates
