"""The cloud cluster's autoscaling on one machine: Ray's fake multi-node provider with cluster.yaml's node
types (tests/fake_cluster.py), a tiny default sweep submitted with `ray job submit`, and the checks that the
purifier actors' GPU demand launched a gpu_worker node they ran on, that every trial finished in
MLflow, and that the cluster went back to the head alone once idle."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from tests.fake_cluster import FAKE_HEAD_NODE_TYPE, fake_cluster_config
from tests.helpers import REPO, sqlite_store
from tests.integration.ray_cli import (
    AGENT_PORT_FLAGS,
    RAY_BIN,
    agent_port_args,
    cluster_state,
    ensure_ray_auth_token,
    free_ports,
    jobs_api_up,
    stop_cluster,
    submit_job,
)
from tests.integration.tiny_models import TINY_EBM

IDLE_TIMEOUT_MINUTES = 0.2


def _node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


def _start_head(temp_dir: str, env: dict[str, str], attempts: int = 3) -> tuple[subprocess.Popen, str]:
    """Start the fake cluster's head on fresh free ports; return it and its dashboard address once jobs are listed.

    A head that exits at start-up (a chosen port taken by another process in between) is started again on new
    ports, up to `attempts` times; the last one's log is in the failure message.
    """
    log = Path(temp_dir) / "head.log"
    for _ in range(attempts):
        # Own GCS, dashboard and agent ports, not Ray's defaults (another Ray on this machine may hold them): the
        # fake provider's `gcs_address` tells the launched nodes where to join.
        gcs_port, dashboard_port, *agent_ports = free_ports(2 + len(AGENT_PORT_FLAGS))
        config = fake_cluster_config(REPO / "cluster.yaml", gcs_address=f"{_node_ip()}:{gcs_port}",
                                     max_workers_per_type=1, idle_timeout_minutes=IDLE_TIMEOUT_MINUTES)
        config_path = Path(temp_dir) / "fake_cluster.yaml"
        config_path.write_text(yaml.safe_dump(config))
        head_resources = config["available_node_types"][FAKE_HEAD_NODE_TYPE]["resources"]
        with open(log, "w") as out:
            head = subprocess.Popen(
                [str(RAY_BIN / "ray"), "start", "--head", "--block", "--autoscaling-config", str(config_path),
                 "--num-cpus", str(head_resources.get("CPU", 0)), "--num-gpus", str(head_resources.get("GPU", 0)),
                 "--object-store-memory", "300000000", "--port", str(gcs_port), "--temp-dir", temp_dir,
                 "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
                 *agent_port_args(agent_ports)],
                cwd=REPO, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
        address = f"http://127.0.0.1:{dashboard_port}"
        if jobs_api_up(head, address, env, log):
            return head, address
        stop_cluster(head, temp_dir)
    raise AssertionError(f"the Ray head exited at start-up {attempts} times:\n" + log.read_text()[-3000:])


def test_gpu_demand_launches_a_gpu_worker_and_the_cluster_scales_back_to_the_head(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="rayas-", dir="/tmp")  # short: Ray's unix socket paths have a length limit
    uri = sqlite_store(tmp_path)
    env = {**os.environ, "PATH": f"{RAY_BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token", "MLFLOW_TRACKING_URI": uri,
           "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    ensure_ray_auth_token(env)
    head, address = _start_head(temp_dir, env)
    try:
        (tmp_path / "tiny_ebm.yaml").write_text(json.dumps(TINY_EBM))
        # No --working-dir: the fake nodes share the head's session directory, and each new node's runtime-env
        # agent would unpack the package again over the running driver's working directory. The job runs in
        # the head's cwd (this checkout), as on a cluster with a shared filesystem.
        submitted = time.time()
        job = submit_job(address, ["python", "jobs/defense_sweep.py", "--out", str(tmp_path / "out"),
                                   "classifier.epochs=2", "attacks=[{name: badnets}]", "defenses=[]", "target_classes=null",
                                   "purifiers=[{name: none}, {name: ebm, langevin_steps: [2]}]",
                                   f"model_training.ebm={tmp_path / 'tiny_ebm.yaml'}", "purification.num_actors=1",
                                   "purification.num_gpus_per_actor=1", "tune.max_concurrent_trials=1",
                                   f"work_dir={tmp_path / 'work'}"], env, timeout=600)
        job_done = time.time()
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]

        nodes = {n["node_id"]: n for n in cluster_state("nodes", address, env)}
        workers = [n for n in nodes.values() if not n["is_head_node"]]
        gpu_nodes = {n["node_id"] for n in workers if n["resources_total"].get("GPU", 0) >= 1}
        assert gpu_nodes, f"no gpu_worker node was launched: {[n['resources_total'] for n in workers]}"
        purifiers = [a for a in cluster_state("actors", address, env) if "PurifierActor" in json.dumps(a)]
        assert purifiers and all(a["node_id"] in gpu_nodes for a in purifiers), purifiers
        kind = {n["node_id"]: "gpu_worker" if n["node_id"] in gpu_nodes else "cpu_worker" for n in workers}
        launched = sorted((datetime.fromisoformat(n["start_time_ms"]).timestamp() - submitted, kind[n["node_id"]])
                          for n in workers)  # `ray list` gives start_time_ms as a local datetime string
        print("[autoscaling] launched " + ", ".join(f"{kind} {at:.0f} s" for at, kind in launched)
              + f" after submission; the job took {job_done - submitted:.0f} s")

        scaled_down = None
        while time.time() < job_done + 180:
            alive = [n for n in cluster_state("nodes", address, env) if n["state"] == "ALIVE"]
            if len(alive) == 1 and alive[0]["is_head_node"]:
                scaled_down = time.time() - job_done
                break
            time.sleep(2)
        assert scaled_down is not None, f"still alive 180 s after the job: {alive}"
        print(f"[autoscaling] head alone {scaled_down:.0f} s after the job ended "
              f"(idle timeout {IDLE_TIMEOUT_MINUTES * 60:.0f} s)")
    finally:
        stopping = time.time()
        stop_cluster(head, temp_dir)
        print(f"[autoscaling] cluster stopped in {time.time() - stopping:.0f} s")
        shutil.rmtree(temp_dir, ignore_errors=True)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["trials"]
    assert len(summary) == 2 and all(row["status"] == "FINISHED" for row in summary)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("defense-sweep").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.runName"] for r in children} == {row["run_name"] for row in summary}
