"""The sweep's Pareto plot (genlab.sweep.pareto): short names, families, the front, labels that do not collide."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genlab.sweep.pareto import family, pareto_front, pareto_plot, place_labels, short_name  # noqa: E402


def _entry(purifier: str, params: dict, poison: float, accuracy: float, **extra) -> dict:
    return {"attack": "blend", "purifier": purifier, "purifier_params": params, "kind": extra.pop("kind", "purifier"),
            "poison_success_rate_mean": poison, "natural_accuracy_mean": accuracy, **extra}


def test_short_names_and_families():
    assert short_name(_entry("ebm", {"langevin_steps": 150, "step_size": 0.0125}, 0, 0)) == "ebm T150"
    assert short_name(_entry("ddpm", {"diffusion_start_steps": 75}, 0, 0)) == "ddpm t75"
    reps = {"ebm": {"langevin_steps": [10]}, "ddpm": {"diffusion_start_steps": [25]}, "reps": 2}
    assert short_name(_entry("puregen-reps", reps, 0, 0)) == "reps [10,25,2]"
    assert short_name(_entry("jpeg", {"quality": 50}, 0, 0)) == "jpeg q50"
    assert short_name(_entry("friendly_noise", {"random_noise": "bernoulli"}, 0, 0)) == "friends-B"
    assert short_name(_entry("epic", {"subset_fraction": 0.3}, 0, 0)) == "epic 0.3"
    assert short_name(_entry("spectral_signatures", {"poison_fraction_bound": 0.33}, 0, 0)) == "ss eps0.33"
    assert short_name(_entry("something_new", {}, 0, 0)) == "something_new"
    assert family(_entry("activation_clustering", {}, 0, 0)) == family(_entry("spectral_signatures", {}, 0, 0))
    assert family(_entry("ebm", {}, 0, 0)) != family(_entry("ddpm", {}, 0, 0))


def test_pareto_front_keeps_the_undominated_settings():
    best_guard, best_accuracy = _entry("ebm", {}, 0.05, 0.90), _entry("none", {}, 0.9, 0.97)
    dominated = _entry("jpeg", {"quality": 50}, 0.5, 0.85)
    assert pareto_front([best_guard, best_accuracy, dominated]) == [best_guard, best_accuracy]


def test_labels_of_crowded_points_neither_overlap_nor_leave_the_axes():
    fig, ax = plt.subplots(figsize=(5, 4))
    points = [(0.1 + 0.01 * (i % 3), 0.9 - 0.01 * (i // 3)) for i in range(9)]  # a tight 3x3 cluster
    ax.scatter(*zip(*points))
    ax.margins(0.3)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    notes = place_labels(ax, points, [f"setting {i}" for i in range(9)])
    boxes = [note.get_window_extent(renderer) for note in notes]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    inside = ax.get_window_extent(renderer)
    assert all(inside.x0 <= b.x0 and b.x1 <= inside.x1 and inside.y0 <= b.y0 and b.y1 <= inside.y1 for b in boxes)
    plt.close(fig)


def test_pareto_plot_draws_ci_bars_when_present_and_copes_without(tmp_path):
    entries = [_entry("none", {}, 0.9, 0.97, cost_s_mean=0.0),
               _entry("ebm", {"langevin_steps": 150}, 0.1, 0.93, cost_s_mean=40.0, ci_low=0.05, ci_high=0.2,
                      natural_accuracy_ci95=0.01),
               _entry("epic", {"subset_fraction": 0.3}, 0.6, 0.9, kind="defense", cost_s_mean=2.0,
                      poison_success_rate_ci95=None)]
    path = pareto_plot(entries, tmp_path / "pareto.png")
    assert path.is_file() and path.stat().st_size > 10_000
    assert pareto_plot([], tmp_path / "empty.png").is_file()
