"""`ray job submit` of the default sweep against a real `ray start --head` on 127.0.0.1."""

import json
import os
import signal
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ensure_ray_auth_token, free_ports

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"


@pytest.mark.slow
def test_job_submit_runs_the_sweep_on_a_head_node(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    ensure_ray_auth_token(BIN / "ray", env)
    agent_flags = ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port",
                   "--runtime-env-agent-port", "--ray-client-server-port")
    dashboard, gcs, *agent_ports = free_ports(2 + len(agent_flags))
    ray_temp = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")  # short: Ray's unix socket paths have a length limit
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus", "2", "--dashboard-host", "127.0.0.1",
         "--dashboard-port", str(dashboard), "--port", str(gcs), "--temp-dir", ray_temp,
         # own ports for the node's agents: the test session's local Ray holds the defaults
         *[arg for flag, port in zip(agent_flags, agent_ports) for arg in (flag, str(port))]],
        env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        address = f"http://127.0.0.1:{dashboard}"
        deadline = time.time() + 120
        while subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env,
                             capture_output=True).returncode != 0:
            assert time.time() < deadline and head.poll() is None, "the Ray head did not come up"
            time.sleep(2)
        submit = [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", ".", "--",
                  "python", "jobs/defense_sweep.py", "--out", str(tmp_path / "out"), "classifier.epochs=2",
                  "purifiers=[{name: none}, {name: jpeg, quality: 50}]",
                  "attacks=[{name: badnets}, {name: blend}]", f"work_dir={tmp_path / 'work'}"]
        while True:  # the dashboard answers before the node's job agent is up ("No available agent")
            job = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
            if "No available agent" not in job.stderr or time.time() > deadline:
                break
            time.sleep(3)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "succeeded" in job.stdout + job.stderr
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=120)
        shutil.rmtree(ray_temp, ignore_errors=True)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["trials"]
    assert len(summary) == 4 and all(row["status"] == "FINISHED" for row in summary)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("defense-sweep").experiment_id])
    assert sum("mlflow.parentRunId" in r.data.tags for r in runs) == 4
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts beside the store, not in the job's temp working dir
