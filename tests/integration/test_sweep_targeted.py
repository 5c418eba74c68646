"""A targeted attack inside the sweep, on a real local Ray and a real sqlite MLflow store: the papers' protocol (one
target, its poisons and one victim per trial), paired across purifiers, counted as successes / trials."""

import json

import pytest
from mlflow.tracking import MlflowClient

from genlab.attacks.targeted.targeted_eval import success_rate
from tests.integration.sweep_runs import run_sweep_in

TRIALS = 3
TINY = ["classifier.epochs=2", "classifier.width=8", "dataset.max_train=500", "ray.num_cpus=2", "target_classes=null",
        f"attacks=[{{name: gradient_matching, trials: {TRIALS}, budget: 0.02, epsilon: 32, steps: 4, restarts: 1, "
        "adversarial_class: runner_up, surrogate: {arch: small_cnn, width: 8, epochs: 1}}]",
        "purifiers=[{name: none}, {name: jpeg, quality: 50}]", "defenses=[]"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, ray_session):
    return run_sweep_in(tmp_path_factory, "targeted", TINY)


def test_each_trial_has_its_own_target_and_victim_paired_across_purifiers(sweep):
    result, uri, _ = sweep
    assert result.all_finished
    rows = {(r["purifier"], r["poison_key"]): r for r in result.rows}
    assert len(rows) == len(result.rows) == 2 * TRIALS
    keys = {r["poison_key"] for r in result.rows}
    assert keys == {f"gradient_matching-trial{k}" for k in range(TRIALS)}
    targets = {key: rows[("none", key)]["target_rows"] for key in keys}
    assert len(set(targets.values())) == TRIALS  # one target image per trial, a different one each
    assert all(rows[("jpeg", key)]["target_rows"] == targets[key] for key in keys)  # the same target under JPEG
    assert all(r["targets"] == 1 and r["target_class"] is None for r in result.rows)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("defense-sweep").experiment_id], max_results=100)
    victims = {r.data.tags["mlflow.runName"] for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert victims == {r["run_name"] for r in result.rows}  # one classifier per (trial, purifier)


def test_the_cell_counts_successes_over_trials_with_a_clopper_pearson_interval(sweep):
    result, _, tmp = sweep
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    for cell in summary["aggregates"]:
        members = [r for r in result.rows if r["purifier"] == cell["purifier"]]
        successes = sum(round(r["poison_success_rate"]) for r in members)
        expected = success_rate([True] * successes + [False] * (TRIALS - successes))
        assert (cell["n"], cell["successes"], cell["ci_method"]) == (TRIALS, successes, "clopper-pearson")
        assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((expected.low, expected.high))
    table = (tmp / "out" / "results.md").read_text()
    assert all(f"| {r['target_rows']} |" in table for r in result.rows)  # the per-trial table names each target
