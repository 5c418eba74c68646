"""Search modes (grid with retries, Optuna, ASHA) and the purification cache across sweeps, on real Ray + MLflow.

The in-process sweeps share one work_dir: the first purifies each setting, the others read the cache.
"""

import contextlib
import io
import json
import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from genlab.config import load_config
from genlab.sweep.config import SweepConfig
from genlab.sweep.runner import run_sweep
from tests.helpers import REPO, run_job, sqlite_store

PURIFIERS = "purifiers=[{name: none}, {name: jpeg, quality: 50}, {name: gaussian_noise, sigma: 128}]"
TINY = ["classifier.epochs=2", "classifier.width=8", "attacks=[{name: badnets}]", PURIFIERS, "purification.num_actors=1",
        "ray.num_cpus=2", "defenses=[]", "target_classes=null"]
SETTINGS = {"badnets-none", "badnets-jpeg-q50", "badnets-noise-s128"}  # the planned data keys


def _config(work: Path, *overrides: str) -> SweepConfig:
    return load_config(SweepConfig, REPO / "conf/defense_sweep.yaml", [*TINY, f"work_dir={work}", *overrides])


def _children(uri: str, experiment: str, parent: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment).experiment_id
    return client, client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent}'", max_results=1000)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(tmp dir, MLflow URI) shared by this module's in-process sweeps; MLFLOW_TRACKING_URI set while it lives."""
    tmp = tmp_path_factory.mktemp("search")
    uri = sqlite_store(tmp)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield tmp, uri
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI")
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.fixture(scope="module")
def twice(store, ray_session):
    """The same grid sweep run twice in one work_dir; the jpeg trial dies on its first attempt each time."""
    tmp, uri = store
    cfg = _config(tmp / "work", "experiment=search-retry", "tune.max_failures=1", "faults.fail_trials_matching=[jpeg]",
                  "faults.fail_once=true")
    first = run_sweep(cfg, tmp / "first")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        second = run_sweep(cfg, tmp / "second")
    return first, (second, printed.getvalue()), uri, tmp


def test_a_dead_trial_is_retried_and_mlflow_keeps_one_finished_run(twice):
    first, _, uri, _ = twice
    assert first.all_finished and {r["run_name"] for r in first.rows} == {f"{k}-seed0" for k in SETTINGS}
    client, children = _children(uri, "search-retry", first.parent_run_id)
    assert sorted(c.data.tags["genlab.trial_name"] for c in children) == sorted(r["run_name"] for r in first.rows)
    assert all(c.info.status == "FINISHED" for c in children)  # no FAILED or RUNNING leftover of the dead attempt
    retried = [c for c in children if c.data.tags.get("genlab.retries")]
    assert [c.data.tags["genlab.trial_name"] for c in retried] == ["badnets-jpeg-q50-seed0"]
    assert retried[0].data.tags["genlab.retries"] == "1"
    error = client.download_artifacts(retried[0].info.run_id, "attempts/error-1.txt")
    assert "fault injected into trial badnets-jpeg-q50-seed0" in Path(error).read_text()
    history = client.get_metric_history(retried[0].info.run_id, "natural_accuracy")
    assert [m.step for m in history] == [1, 2]  # the retry's epochs, once


def test_a_second_sweep_reads_every_part_from_the_cache(twice):
    first, (second, printed), _, tmp = twice
    before = json.loads((tmp / "first" / "summary.json").read_text())
    after = json.loads((tmp / "second" / "summary.json").read_text())
    assert before["purification"] == {"purification_stage_runs": 2, "purification_settings_from_cache": 0}
    assert after["purification"] == {"purification_stage_runs": 0, "purification_settings_from_cache": 2}
    # The second sweep's cache report, per purifier setting: every part (clean rows, poisoned rows) a hit.
    assert "jpeg-q50: 2/2 parts from the purification cache\n" in printed
    assert "noise-s128: 2/2 parts from the purification cache\n" in printed
    assert second.all_finished
    assert after["trials"] == before["trials"] == first.rows  # same metrics, bit for bit
    assert (tmp / "second" / "results.md").read_text() == (tmp / "first" / "results.md").read_text()


def test_without_retries_the_same_fault_fails_the_trial_and_the_job(tmp_path):
    proc = run_job(["jobs/defense_sweep.py", "--out", str(tmp_path / "out"), "classifier.epochs=1",
                    "attacks=[{name: badnets}]", "purifiers=[{name: none}]", "defenses=[]", "target_classes=null",
                    "faults.fail_trials_matching=[none]",
                    "faults.fail_once=true", "tune.max_failures=0", "ray.num_cpus=2", f"work_dir={tmp_path / 'w'}"],
                   sqlite_store(tmp_path), timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["trials"]
    assert [(r["run_name"], r["status"]) for r in summary] == [("badnets-none-seed0", "FAILED")]
    client = MlflowClient(sqlite_store(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("defense-sweep").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED"]  # the trial's child and the parent


def _search_sweep(store, search: str, *overrides: str):
    """Run the tiny sweep with tune.search=`search` (experiment search-<search>, output folder <search>) in the
    module's store and work_dir; return (its SweepResult, the MLflow URI, the store's folder)."""
    tmp, uri = store
    cfg = _config(tmp / "work", f"experiment=search-{search}", f"tune.search={search}", *overrides)
    return run_sweep(cfg, tmp / search), uri, tmp


@pytest.fixture(scope="module")
def optuna_sweep(store, twice):
    return _search_sweep(store, "optuna", "tune.optuna.num_samples=4", "tune.optuna.startup_trials=2", "seeds=[0,1]")


def test_optuna_runs_num_samples_trials_over_the_planned_settings(optuna_sweep):
    result, uri, tmp = optuna_sweep
    assert len(result.rows) == 4 and result.all_finished
    names = [r["run_name"] for r in result.rows]
    assert len(set(names)) == 4
    per_setting: dict[str, list[int]] = {}
    for row in result.rows:
        key = row["run_name"].rsplit("-seed", 1)[0]
        assert key in SETTINGS
        per_setting.setdefault(key, []).append(row["seed"])
    for seeds in per_setting.values():  # a setting proposed again gets the next seed: 0, 1, then 2 ...
        assert sorted(seeds) == list(range(len(seeds)))
    _, children = _children(uri, "search-optuna", result.parent_run_id)
    assert sorted(c.data.tags["genlab.trial_name"] for c in children) == sorted(names)
    assert all(c.info.status == "FINISHED" for c in children)
    summary = json.loads((tmp / "optuna" / "summary.json").read_text())
    assert summary["purification"]["purification_stage_runs"] == 0  # optuna chose among settings purified already
    repeated = [a for a in summary["aggregates"] if a["seeds"] > 1]
    assert all(a["natural_accuracy_ci95"] is not None for a in repeated)
    assert sum(a["seeds"] for a in summary["aggregates"]) == 4


@pytest.fixture(scope="module")
def asha_sweep(store, twice):
    return _search_sweep(store, "asha", "classifier.epochs=3", "tune.asha.grace_period=1", "tune.asha.reduction_factor=2")


def test_asha_stops_trailing_trials_and_says_which(asha_sweep):
    result, uri, tmp = asha_sweep
    assert result.all_finished and len(result.rows) == 3
    stopped = {r["run_name"] for r in result.rows if r["stopped_early"]}
    assert "badnets-noise-s128-seed0" in stopped and len(stopped) < 3  # sigma 128 trails at epoch 1
    client, children = _children(uri, "search-asha", result.parent_run_id)
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    for child in children:
        name = child.data.tags["genlab.trial_name"]
        assert child.data.tags["genlab.stopped_early"] == str(name in stopped).lower()
        epochs = [m.step for m in client.get_metric_history(child.info.run_id, "natural_accuracy")]
        assert (epochs[-1] < 3) == (name in stopped)
    aggregates = json.loads((tmp / "asha" / "summary.json").read_text())["aggregates"]
    assert sum(a["seeds"] for a in aggregates) == 3 - len(stopped)  # stopped trials are left out of the means
