"""The sweep's Pareto plot: poison success vs natural accuracy vs cost, one row of panels per attack.

Each point is one setting (purifier or defense), its mean over the trials that finished every
epoch; error bars are its confidence interval (`ci_low`/`ci_high` on poison success when the
rows carry them, else the Student-t half-widths `<metric>_ci95`; none for a single trial).
Left panel: poison success (x, lower is better) against accuracy (y); the Pareto front (no
other setting is both lower and higher) is ringed in black and joined by a dashed line. Right
panel: cost in seconds (x, log) against poison success. Points are coloured by family (PureGen-EBM,
FrieNDs, ...), purifiers as circles and defenses as squares, and named by short setting names
(`ebm T150`) placed where they overlap no other name and stay inside the axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

FAMILIES = {"none": "no defense", "jpeg": "JPEG", "gaussian_noise": "Gaussian noise", "ebm": "PureGen-EBM",
            "ddpm": "PureGen-DDPM", "puregen-naive": "PureGen combos", "puregen-reps": "PureGen combos",
            "puregen-filt": "PureGen combos", "friendly_noise": "FrieNDs", "epic": "EPIC",
            "activation_clustering": "filters (AC, SS)", "spectral_signatures": "filters (AC, SS)"}
_FAMILY_ORDER = list(dict.fromkeys(FAMILIES.values()))
_COLOURS = dict(zip(_FAMILY_ORDER, plt.get_cmap("tab10").colors))
_OFFSETS = [(6, 4), (6, -12), (-6, 4), (-6, -12), (0, 10), (0, -16), (12, -4), (-12, -4),
            (14, 12), (-14, 12), (14, -20), (-14, -20), (0, 22), (0, -28)]  # label offsets tried, in points


def _single(value: Any) -> Any:
    """Return the one element of a one-element list, else the value."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _chain(params: dict[str, Any]) -> str:
    ebm, ddpm = params.get("ebm", {}), params.get("ddpm", {})
    return f"[{_single(ebm.get('langevin_steps'))},{_single(ddpm.get('diffusion_start_steps'))},{params.get('reps')}]"


_SHORT: dict[str, Callable[[dict[str, Any]], str]] = {
    "ebm": lambda p: f"ebm T{_single(p.get('langevin_steps'))}",
    "ddpm": lambda p: f"ddpm t{_single(p.get('diffusion_start_steps'))}",
    "puregen-naive": lambda p: f"naive {_chain(p)}",
    "puregen-reps": lambda p: f"reps {_chain(p)}",
    "puregen-filt": lambda p: f"filt k{p.get('filter_fraction')}",
    "jpeg": lambda p: f"jpeg q{p.get('quality')}",
    "gaussian_noise": lambda p: f"noise s{p.get('sigma'):g}",
    "friendly_noise": lambda p: "friends" + ("" if p.get("random_noise") == "none"
                                             else f"-{str(p.get('random_noise', 'b'))[0].upper()}"),
    "epic": lambda p: f"epic {p.get('subset_fraction'):g}",
    "activation_clustering": lambda p: "ac" + (" silh." if p.get("analyzer") == "silhouette" else ""),
    "spectral_signatures": lambda p: f"ss eps{p.get('poison_fraction_bound'):g}",
}


def short_name(entry: dict[str, Any]) -> str:
    """Return a setting's short plot name from its `purifier` and `purifier_params`, e.g. `ebm T150`, `epic 0.3`."""
    name, params = entry["purifier"], entry.get("purifier_params") or {}
    try:
        return _SHORT[name](params) if name in _SHORT else name
    except (TypeError, ValueError, KeyError):
        return name


def family(entry: dict[str, Any]) -> str:
    """Return the family a setting is coloured by (`PureGen-EBM`, `FrieNDs`, ...; its own name if unknown)."""
    return FAMILIES.get(entry["purifier"], entry["purifier"])


def value(entry: dict[str, Any], metric: str) -> float | None:
    """Return a metric of a row or an aggregate entry: `<metric>_mean` when present, else `<metric>`."""
    found = entry.get(f"{metric}_mean", entry.get(metric))
    return None if found is None else float(found)


def error(entry: dict[str, Any], metric: str) -> tuple[float, float] | None:
    """Return (below, above) the mean for a metric's error bar, or None: `ci_low`/`ci_high` (poison success),
    else the symmetric `<metric>_ci95`."""
    mean = value(entry, metric)
    if metric == "poison_success_rate" and entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        return max(0.0, mean - float(entry["ci_low"])), max(0.0, float(entry["ci_high"]) - mean)
    half = entry.get(f"{metric}_ci95")
    return None if half is None else (float(half), float(half))


def pareto_front(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the entries no other beats on both poison success (lower) and natural accuracy (higher)."""
    points = [(value(e, "poison_success_rate"), value(e, "natural_accuracy")) for e in entries]

    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)

    return [e for e, p in zip(entries, points) if not dominated(p)]


def place_labels(ax: Axes, points: list[tuple[float, float]], texts: list[str]) -> list[Annotation]:
    """Annotate each point with its text at the first offset where the label overlaps no other label or
    point and stays inside the axes (else the offset of least overlap); return the annotations.

    Call it once the figure's layout is final (the placement works in display coordinates).
    """
    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    scale = ax.figure.dpi / 72.0  # display pixels per point
    anchors = [ax.transData.transform(point) for point in points]
    placed = [Bbox.from_bounds(x - 4, y - 4, 8, 8) for x, y in anchors]  # the markers are obstacles too
    annotations = []
    for (x, y), text, anchor in zip(points, texts, anchors):
        note = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=7, va="bottom")
        size = note.get_window_extent(renderer)
        best, best_cost = (0, 0), None
        for dx, dy in _OFFSETS:
            x0 = anchor[0] + dx * scale - (size.width if dx < 0 else 0)
            box = Bbox.from_bounds(x0, anchor[1] + dy * scale, size.width, size.height)
            outside = (box.x0 < inside.x0) + (box.x1 > inside.x1) + (box.y0 < inside.y0) + (box.y1 > inside.y1)
            cost = 10 * outside + sum(box.overlaps(other) for other in placed) - box.overlaps(placed[len(annotations)])
            if best_cost is None or cost < best_cost:
                best, best_cost, best_box = (dx, dy), cost, box
            if cost == 0:
                break
        note.set_position(best)
        note.set_horizontalalignment("right" if best[0] < 0 else "left")
        placed.append(best_box)
        annotations.append(note)
    return annotations


def _scatter(ax: Axes, entries: list[dict[str, Any]], x_metric: str, y_metric: str, front: list[dict[str, Any]], *,
             x_floor: float | None = None) -> tuple[list[tuple[float, float]], list[str]]:
    """Draw each entry with its error bars; return the points drawn and their short names (labelled later)."""
    points, names = [], []
    for entry in entries:
        x, y = value(entry, x_metric), value(entry, y_metric)
        if x is None or y is None:
            continue
        x = x if x_floor is None else max(x, x_floor)
        xerr, yerr = error(entry, x_metric), error(entry, y_metric)
        ax.errorbar(x, y, xerr=None if xerr is None else [[xerr[0]], [xerr[1]]],
                    yerr=None if yerr is None else [[yerr[0]], [yerr[1]]],
                    fmt="s" if entry.get("kind") == "defense" else "o", color=_COLOURS.get(family(entry), "grey"),
                    markersize=6, elinewidth=0.8, capsize=2, markeredgewidth=1.2,
                    markeredgecolor="black" if entry in front else "none")
        points.append((x, y))
        names.append(short_name(entry))
    ax.margins(0.12)
    return points, names


def pareto_plot(entries: list[dict[str, Any]], path: Path) -> Path:
    """Plot every setting's poison success vs accuracy and cost vs poison success, per attack; save a PNG at `path`.

    `entries`: per-setting rows (means over seeds, as genlab.sweep.report.aggregate) or per-trial rows.
    """
    attacks = sorted({e["attack"] for e in entries}) or ["(no finished trials)"]
    fig, axes = plt.subplots(len(attacks), 2, figsize=(13, 4.6 * len(attacks)), squeeze=False)
    labels = []
    for (accuracy_ax, cost_ax), attack in zip(axes, attacks):
        subset = [e for e in entries if e["attack"] == attack and value(e, "poison_success_rate") is not None
                  and value(e, "natural_accuracy") is not None]
        front = pareto_front(subset)
        line = sorted((value(e, "poison_success_rate"), value(e, "natural_accuracy")) for e in front)
        if line:
            accuracy_ax.plot(*zip(*line), linestyle="--", color="black", linewidth=0.7, zorder=0)
        labels.append((accuracy_ax, *_scatter(accuracy_ax, subset, "poison_success_rate", "natural_accuracy", front)))
        accuracy_ax.set(xlabel="poison success rate (lower is better)", ylabel="natural accuracy",
                        title=f"{attack}: accuracy vs poison success (ringed: Pareto front)")
        # a log axis needs positive costs: the undefended 0 s is drawn at 10 ms
        labels.append((cost_ax, *_scatter(cost_ax, subset, "cost_s", "poison_success_rate", front, x_floor=0.01)))
        cost_ax.set_xscale("log")
        cost_ax.set(xlabel="cost, seconds (purification or defense; log; 0 s drawn at 0.01)", ylabel="poison success rate",
                    title=f"{attack}: poison success vs cost")
    present = [f for f in _FAMILY_ORDER + sorted({family(e) for e in entries} - set(_FAMILY_ORDER))
               if any(family(e) == f for e in entries)]
    handles = [Line2D([], [], marker="o", linestyle="", color=_COLOURS.get(f, "grey"), label=f) for f in present]
    handles += [Line2D([], [], marker="o", linestyle="", color="black", fillstyle="none", label="purifier"),
                Line2D([], [], marker="s", linestyle="", color="black", fillstyle="none", label="defense")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.9 / (4.6 * len(attacks)), 1, 1))
    fig.canvas.draw()
    for ax, points, names in labels:  # after the layout, so the labels are placed in the final axes
        place_labels(ax, points, names)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
