"""`--resume` after the driver is killed mid-sweep: finished trials are kept, the rest run once."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.helpers import REPO, sqlite_store

ARGS = ["classifier.epochs=3", "seeds=[0,1]", "purifiers=[{name: none}, {name: jpeg, quality: 50}]",
        "attacks=[{name: badnets}, {name: blend}]", "ray.num_cpus=2", "defenses=[]", "target_classes=null"]


def _finished_children(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs r JOIN tags t ON r.run_uuid = t.run_uuid "
                                "WHERE t.key = 'mlflow.parentRunId' AND r.status = 'FINISHED'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_resume_after_killed_driver_finishes_without_rerunning(tmp_path):
    db = tmp_path / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": sqlite_store(tmp_path)}
    command = [sys.executable, "jobs/defense_sweep.py", "--out", str(tmp_path / "out"), *ARGS,
               f"work_dir={tmp_path / 'work'}"]
    driver = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while _finished_children(db) < 2:
        assert driver.poll() is None and time.time() < deadline, "the sweep ended before it could be killed"
        time.sleep(1)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    client = MlflowClient(sqlite_store(tmp_path))
    exp = client.get_experiment_by_name("defense-sweep").experiment_id
    before = {r.data.tags["genlab.trial_name"]: r for r in client.search_runs([exp], "tags.`mlflow.parentRunId` != ''")
              if r.info.status == "FINISHED"}
    assert 2 <= len(before) < 8

    resumed = subprocess.run(command[:2] + ["--resume", f"work_dir={tmp_path / 'work'}", "--out", str(tmp_path / "out")],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    parents = [r for r in client.search_runs([exp]) if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in client.search_runs([exp]) if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    names = [c.data.tags["genlab.trial_name"] for c in children]
    assert len(names) == 8 and len(set(names)) == 8  # one run per trial, no duplicates
    assert all(c.info.status == "FINISHED" for c in children)  # none left RUNNING
    after = {c.data.tags["genlab.trial_name"]: c for c in children}
    for name, run in before.items():  # finished trials were not run again
        assert after[name].info.run_id == run.info.run_id and after[name].info.end_time == run.info.end_time
