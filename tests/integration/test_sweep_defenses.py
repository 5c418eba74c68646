"""The baseline defenses inside the sweep, on a real local Ray and a real sqlite MLflow store: FrieNDs, EPIC,
activation clustering and spectral signatures beside the `none` purifier, with cost and detection metrics."""

import json

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.sweep_runs import run_sweep_in

TINY = ["classifier.epochs=2", "classifier.width=8", "dataset.max_train=500", "ray.num_cpus=2", "target_classes=null",
        "attacks=[{name: badnets, target_class: 0, poison_fraction: 0.08, patch_size: 3}]", "purifiers=[{name: none}]",
        "defenses=[{name: friendly_noise, steps: 2, begin_epoch: 1}, {name: epic, every: 1, start_epoch: 1}, "
        "{name: activation_clustering}, {name: spectral_signatures}]"]
DEFENSES = {"friendly_noise", "epic", "activation_clustering", "spectral_signatures"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, ray_session):
    return run_sweep_in(tmp_path_factory, "defenses", TINY)


def test_defenses_run_beside_the_purifiers_with_their_cost(sweep):
    result, _, _ = sweep
    assert result.all_finished
    assert {(r["kind"], r["purifier"]) for r in result.rows} == {("purifier", "none")} | {("defense", d) for d in DEFENSES}
    by_name = {r["purifier"]: r for r in result.rows}
    assert by_name["none"]["cost_s"] == 0
    assert all(by_name[d]["cost_s"] > 0 for d in DEFENSES)
    assert by_name["friendly_noise"]["detection_recall"] is None  # it drops no rows
    for name in ("epic", "activation_clustering", "spectral_signatures"):
        assert 0 <= by_name[name]["detection_recall"] <= 1
    # a 2-epoch model already separates BadNets' relabelled rows: more than the 8% base rate of what AC drops
    assert by_name["activation_clustering"]["detection_precision"] > 0.16


def test_mlflow_and_the_report_hold_the_defense_metrics(sweep):
    result, uri, tmp = sweep
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("defense-sweep").experiment_id], max_results=100)
    children = {r.data.tags["mlflow.runName"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    for row in result.rows:
        metrics = children[row["run_name"]].data.metrics
        assert metrics["cost_s"] == pytest.approx(row["cost_s"])
        if row["detection_recall"] is not None:
            assert metrics["detection_recall"] == pytest.approx(row["detection_recall"])
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    kinds = {(a["purifier"], a["kind"]) for a in summary["aggregates"]}
    assert ("spectral_signatures", "defense") in kinds and ("none", "purifier") in kinds
    assert all("cost_s_mean" in a for a in summary["aggregates"])
    assert (tmp / "out" / "pareto.png").stat().st_size > 10_000
    assert "detection_recall" in (tmp / "out" / "results.md").read_text()
