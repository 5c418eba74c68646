"""Issue 27 point 3: `ray job stop` (SIGTERM, then SIGKILL 3 s later) of a driver inside `tracked_run` ends the
parent MLflow run and its RUNNING child (Tune trial) run KILLED, against a real `ray start --head` on 127.0.0.1."""

import os
import shutil
import signal
import subprocess
import time
import uuid

from mlflow.tracking import MlflowClient

from tests.helpers import REPO, sqlite_store
from tests.integration.ray_cli import HEAD_START_S, RAY_BIN, ensure_ray_auth_token, jobs_api_up, start_head, submit_job


def _runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("job-stop")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_ray_job_stop_ends_parent_and_child_runs_killed(tmp_path):
    store = sqlite_store(tmp_path)
    env = {**os.environ, "PATH": f"{RAY_BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "MLFLOW_TRACKING_URI": store, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO)])}
    ensure_ray_auth_token(env)
    cluster = start_head(env, prefix="rayjs-", num_cpus=2)
    head, address = cluster.process, cluster.address
    job_id = f"stop-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(store)
    try:
        assert jobs_api_up(head, address, env), "the Ray head did not come up"
        submitted = submit_job(address, [str(RAY_BIN / "python"), str(REPO / "tests/integration/job_stop_driver.py"),
                                         str(tmp_path / "tune")], env, timeout=HEAD_START_S,
                               options=("--no-wait", "--submission-id", job_id))
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        deadline = time.time() + 420  # the driver imports torch, Ray and MLflow on a busy 2-core machine
        while not any("mlflow.parentRunId" in r.data.tags and r.info.status == "RUNNING" for r in _runs(client)):
            logs = subprocess.run([str(RAY_BIN / "ray"), "job", "logs", "--address", address, job_id], env=env,
                                  capture_output=True, text=True).stdout
            assert time.time() < deadline, f"no child run after 420 s; job log:\n{logs[-3000:]}"
            time.sleep(2)
        stopped = subprocess.run([str(RAY_BIN / "ray"), "job", "stop", "--address", address, job_id], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]
        logs = subprocess.run([str(RAY_BIN / "ray"), "job", "logs", "--address", address, job_id], env=env,
                              capture_output=True, text=True).stdout
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=120)
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    runs = _runs(client)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 1, [(r.info.run_name, r.info.status) for r in runs]
    assert parents[0].info.status == "KILLED", logs[-3000:]
    assert children[0].info.status == "KILLED", logs[-3000:]
    assert children[0].data.tags["mlflow.parentRunId"] == parents[0].info.run_id
