"""Issue 27 point 5: a Tune trial whose worker process is killed mid-training (a lost spot node) is retried by Tune
(`tune.max_failures`) and resumes from its last classifier checkpoint, past epoch 0, on a real local Ray."""

import os

from mlflow.tracking import MlflowClient

from genlab.config import load_config
from genlab.sweep.config import SweepConfig
from genlab.sweep.runner import run_sweep
from tests.helpers import REPO, sqlite_store


def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path, ray_session, monkeypatch):
    uri = sqlite_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = load_config(SweepConfig, REPO / "conf/defense_sweep.yaml", [
        "classifier.epochs=4", "seeds=[0]", "attacks=[{name: badnets}]", "purifiers=[{name: none}]", "defenses=[]", "target_classes=null",
        "tune.checkpoint_every=1", "tune.max_failures=1", "faults.fail_trials_matching=[badnets]",
        "faults.fail_once=true", "faults.kill_at_epoch=2", f"work_dir={tmp_path / 'work'}"])
    result = run_sweep(cfg, tmp_path / "out")
    assert result.all_finished, result.rows
    client = MlflowClient(uri)
    (child,) = client.search_runs([client.get_experiment_by_name("defense-sweep").experiment_id],
                                  "tags.`mlflow.parentRunId` != ''")
    assert child.info.status == "FINISHED" and child.data.tags["genlab.retries"] == "1"
    assert "attempts/error-1.txt" in [f.path for f in client.list_artifacts(child.info.run_id, "attempts")]
    epochs = [m.step for m in client.get_metric_history(child.info.run_id, "natural_accuracy")]
    assert epochs == [3, 4]  # the retry went on from the checkpoint of epoch 2, not from epoch 0
    assert os.path.isdir(tmp_path / "work" / "faults")  # the fault really fired once
