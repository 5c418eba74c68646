"""The defense sweep end to end on a real local Ray and a real sqlite MLflow store."""

import json

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import run_job, sqlite_store
from tests.integration.sweep_runs import run_default_sweep
from tests.integration.tiny_models import TINY_DDPM, TINY_EBM

QUICK = ["classifier.epochs=3", "target_classes=null", "purifiers.3.langevin_steps=[10,20]", "purifiers.4.diffusion_start_steps=[5]",
         "purifiers.5.ebm.langevin_steps=[5]", "purifiers.5.ddpm.diffusion_start_steps=[5]",
         "purifiers.6.ebm.langevin_steps=[3]", "purifiers.6.ddpm.diffusion_start_steps=[3]",
         "purifiers.7.transform.diffusion_start_steps=[5]", "attacks.2.trigger_steps=40", "attacks.2.surrogate.epochs=2",
         "defenses=[]"]  # the baseline defenses: integration/test_sweep_defenses.py
EXTENDED = "conf/defense_sweep_extended.yaml"  # the default's purifiers plus JPEG and Gaussian noise: every kind
ATTACKS = ("badnets", "blend", "narcissus")
PURIFIERS = ("none", "jpeg", "gaussian_noise", "ebm", "ddpm", "puregen-naive", "puregen-reps", "puregen-filt")


def _runs(uri: str, experiment: str = "defense-sweep"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, ray_session):
    tmp = tmp_path_factory.mktemp("sweep")
    # Tiny generative models: this tests the plumbing; integration/test_ebm.py, test_ddpm.py test real models' effect.
    (tmp / "tiny_ebm.yaml").write_text(json.dumps(TINY_EBM))
    (tmp / "tiny_ddpm.yaml").write_text(json.dumps(TINY_DDPM))
    result, uri = run_default_sweep(tmp, QUICK + [f"model_training.ebm={tmp / 'tiny_ebm.yaml'}",
                                                  f"model_training.ddpm={tmp / 'tiny_ddpm.yaml'}"], EXTENDED)
    return result, uri, tmp


def test_sweep_covers_every_attack_and_purifier(sweep):
    result, _, _ = sweep
    combos = {(r["attack"], r["purifier"]) for r in result.rows}
    assert combos == {(a, p) for a in ATTACKS for p in PURIFIERS}
    assert result.all_finished
    ebm_steps = sorted(r["purifier_params"]["langevin_steps"] for r in result.rows if r["purifier"] == "ebm")
    assert ebm_steps == [10] * len(ATTACKS) + [20] * len(ATTACKS)  # one chain, two snapshots, for each attack


def test_mlflow_holds_one_parent_and_a_finished_child_per_trial(sweep):
    result, uri, _ = sweep
    client, parents, children = _runs(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["genlab.dataset_hash"] and parents[0].data.tags["genlab.git_commit"]
    assert parents[0].data.params["classifier.epochs"] == "3"
    assert len(children) == len(result.rows)
    assert all(c.info.status == "FINISHED" for c in children)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    history = client.get_metric_history(children[0].info.run_id, "natural_accuracy")
    assert [m.step for m in history] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert {"report/summary.json", "report/results.csv", "report/results.md", "report/pareto.png"} <= artifacts
    assert [a.path for a in client.list_artifacts(children[0].info.run_id, "samples")]
    speed = {c.data.params["purifier"]: {k: v for k, v in c.data.params.items() if k.startswith("purify_speed.")}
             for c in children}
    assert speed["ebm"] == {"purify_speed.device": "cpu", "purify_speed.dtype": "fp32",  # the CPU fast path it ran
                            "purify_speed.memory_format": "channels_last", "purify_speed.dense_convs": "true",
                            "purify_speed.compiled": "false", "purify_speed.batch_size": "128"}
    assert speed["none"] == {}  # no network, no path


def test_summary_and_table_equal_what_mlflow_holds(sweep, capsys):
    result, uri, tmp = sweep
    summary = json.loads((tmp / "out" / "summary.json").read_text())["trials"]
    _, _, children = _runs(uri)
    by_name = {c.data.tags["mlflow.runName"]: c for c in children}
    for row in summary:
        metrics = by_name[row["run_name"]].data.metrics
        for key in ("natural_accuracy", "poison_success_rate"):
            assert row[key] == metrics[key]
        # every trial learns the digits, far above chance (0.1): the tiny purifiers change images by a few pixel values
        assert row["natural_accuracy"] >= 0.5, row
        if row["purifier"] == "none":
            assert row["purify_images_per_s"] is None
        else:
            assert row["purify_images_per_s"] == metrics["purify_images_per_s"] > 0
    table = (tmp / "out" / "results.md").read_text()
    assert all(f"{row['natural_accuracy']:.4f}" in table for row in summary)


def test_generative_models_learn_from_rows_the_classifier_never_sees(sweep):
    """summary.json's generative_training block is counted from the images; every purifier row states its data."""
    result, _, tmp = sweep
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    split = summary["split"]
    assert split["generative_rows"] + split["classifier_rows"] == 1438 and split["test_rows"] == 359
    for kind in ("ebm", "ddpm"):
        block = summary["generative_training"][kind]
        assert block["rows"] == split["generative_rows"] and block["generative_data"] == "disjoint"
        assert block["overlap_with_classifier_train"] == 0 and block["overlap_with_test"] == 0
    for row in result.rows:
        statement = row["generative_training"]
        if row["purifier"] in ("none", "jpeg", "gaussian_noise"):
            assert statement == "-"
        else:
            assert "digits generative rows" in statement and "overlap 0 train / 0 test" in statement, row


def test_narcissus_is_scored_x1_with_x3_beside_it_and_cells_carry_n_and_ci(sweep):
    result, _, tmp = sweep
    for row in result.rows:
        amplified = row["poison_success_rate_amplified"]
        assert (amplified is not None) == (row["attack"] == "narcissus"), row
    aggregates = json.loads((tmp / "out" / "summary.json").read_text())["aggregates"]
    assert all(a["n"] == 1 and "ci_low" in a and "ci_high" in a for a in aggregates)  # one class, one seed here
    assert "poison success % [95% CI]" in (tmp / "out" / "results.md").read_text()


def test_undefended_rows_meet_the_attack_targets(sweep):
    """The dirty-label backdoors at 3 epochs; Narcissus' clean-label efficacy is integration/test_narcissus.py's."""
    result, _, _ = sweep
    for row in result.rows:
        if row["purifier"] == "none" and row["attack"] in ("badnets", "blend"):
            assert row["poison_success_rate"] >= 0.8 and row["natural_accuracy"] >= 0.9, row


def _job(args, tmp):
    """jobs/defense_sweep.py with `args`, its --out and MLflow store in the folder `tmp`."""
    return run_job(["jobs/defense_sweep.py", "--out", str(tmp / "out"), *args], sqlite_store(tmp), timeout=900)


def test_failed_trial_is_marked_and_exit_code_is_nonzero(tmp_path):
    proc = _job(["classifier.epochs=2", "target_classes=null", "attacks=[{name: badnets}]",
                 "purifiers=[{name: none}, {name: jpeg, quality: 50}]", "faults.fail_trials_matching=[jpeg]",
                 f"work_dir={tmp_path / 'work'}", "ray.num_cpus=2", "defenses=[]"], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    client, parents, children = _runs(sqlite_store(tmp_path))
    status = {c.data.tags["mlflow.runName"]: c for c in children}
    assert status["badnets-none-seed0"].info.status == "FINISHED"
    failed = status["badnets-jpeg-q50-seed0"]
    assert failed.info.status == "FAILED" and "fault injected" in failed.data.tags["error"]
    assert parents[0].info.status == "FAILED"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["trials"]
    assert {r["run_name"]: r["status"] for r in summary} == {"badnets-none-seed0": "FINISHED",
                                                            "badnets-jpeg-q50-seed0": "FAILED"}


@pytest.mark.parametrize("args, message", [
    (["classifier.epochz=3"], "classifier.epochz"),
    (["--config", "conf/absent.yaml"], "conf/absent.yaml"),
    (["tune.max_concurrent_trials=zero"], "tune.max_concurrent_trials"),
    (["generative_dataset={name: digits}"], "generative_dataset"),
])
def test_bad_config_exits_2_naming_the_key(tmp_path, args, message):
    proc = _job(args, tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_cifar10_is_a_clear_error(tmp_path):
    proc = _job(["dataset.name=cifar10", f"dataset.root={tmp_path / 'nodata'}"], tmp_path)
    assert proc.returncode == 1
    assert "CIFAR-10 not found" in proc.stderr and "dataset.download=true" in proc.stderr
