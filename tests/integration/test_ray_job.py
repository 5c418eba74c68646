"""`ray job submit` of the default sweep against a real `ray start --head` on 127.0.0.1."""

import json
import os
import shutil
import signal
import subprocess
import tempfile

from mlflow.tracking import MlflowClient

from tests.helpers import sqlite_store
from tests.integration.ray_cli import (
    AGENT_PORT_FLAGS,
    RAY_BIN,
    agent_port_args,
    ensure_ray_auth_token,
    free_ports,
    jobs_api_up,
    submit_job,
)


def test_job_submit_runs_the_sweep_on_a_head_node(tmp_path):
    env = {**os.environ, "PATH": f"{RAY_BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "MLFLOW_TRACKING_URI": sqlite_store(tmp_path)}
    ensure_ray_auth_token(env)
    dashboard, gcs, *agent_ports = free_ports(2 + len(AGENT_PORT_FLAGS))
    ray_temp = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")  # short: Ray's unix socket paths have a length limit
    head = subprocess.Popen(
        [str(RAY_BIN / "ray"), "start", "--head", "--block", "--num-cpus", "2", "--dashboard-host", "127.0.0.1",
         "--dashboard-port", str(dashboard), "--port", str(gcs), "--temp-dir", ray_temp, *agent_port_args(agent_ports)],
        env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        address = f"http://127.0.0.1:{dashboard}"
        assert jobs_api_up(head, address, env), "the Ray head did not come up"
        job = submit_job(address, ["python", "jobs/defense_sweep.py", "--out", str(tmp_path / "out"),
                                   "classifier.epochs=2", "purifiers=[{name: none}, {name: jpeg, quality: 50}]",
                                   "attacks=[{name: badnets}, {name: blend}]", "target_classes=null", f"work_dir={tmp_path / 'work'}"],
                         env, timeout=900, options=("--working-dir", "."))
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "succeeded" in job.stdout + job.stderr
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=120)
        shutil.rmtree(ray_temp, ignore_errors=True)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["trials"]
    assert len(summary) == 4 and all(row["status"] == "FINISHED" for row in summary)
    client = MlflowClient(sqlite_store(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("defense-sweep").experiment_id])
    assert sum("mlflow.parentRunId" in r.data.tags for r in runs) == 4
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts beside the store, not in the job's temp working dir
