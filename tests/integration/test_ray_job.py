"""`ray job submit` against a real `ray start --head` on 127.0.0.1: the default sweep from an uploaded working
dir (its caches and outputs land outside the upload), and a token-auth cluster with a worker node that cannot see
the driver's disk (callers without the token are refused; the purifier actor gets its model through the object store)."""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from genlab.checkpoints import save_model
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.ebm import EBM_KIND
from tests.helpers import REPO, sqlite_store
from tests.integration.ray_cli import (
    HEAD_START_S,
    RAY_BIN,
    cluster_state,
    ensure_ray_auth_token,
    free_ports,
    jobs_api_up,
    start_head,
    stop_cluster,
    submit_job,
)

WORKER_PORT_FLAGS = ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port",
                     "--runtime-env-agent-port", "--node-manager-port", "--object-manager-port")


def test_job_submit_runs_the_sweep_on_a_head_node(tmp_path):
    home = tmp_path / "home"  # the head's HOME: the job's default workspace is ~/genlab-work
    env = {**os.environ, "PATH": f"{RAY_BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token", "HOME": str(home),
           "MLFLOW_TRACKING_URI": sqlite_store(tmp_path)}
    env.pop("GENLAB_HOME", None)
    ensure_ray_auth_token(env)
    cluster = start_head(env, prefix="rayjob-", num_cpus=2)
    head, address = cluster.process, cluster.address
    try:
        assert jobs_api_up(head, address, env), "the Ray head did not come up"
        job = submit_job(address, ["python", "jobs/defense_sweep.py",
                                   "classifier.epochs=2", "purifiers=[{name: none}, {name: jpeg, quality: 50}]",
                                   "attacks=[{name: badnets}, {name: blend}]", "defenses=[]", "target_classes=null"],
                         env, timeout=900, options=("--working-dir", "."))
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "succeeded" in job.stdout + job.stderr
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=120)
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    workspace = home / "genlab-work"  # not Ray's unpacked upload, which went with the session
    assert f"caches in {workspace / '.genlab'}, outputs in {workspace / 'out' / 'defense_sweep'}" in job.stdout
    assert sorted(p.name for p in (workspace / ".genlab" / "poisons").iterdir())  # the crafted poisons, kept
    summary = json.loads((workspace / "out" / "defense_sweep" / "summary.json").read_text())["trials"]
    assert len(summary) == 4 and all(row["status"] == "FINISHED" for row in summary)
    client = MlflowClient(sqlite_store(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("defense-sweep").experiment_id])
    assert sum("mlflow.parentRunId" in r.data.tags for r in runs) == 4
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts beside the store, not in the job's temp working dir


def _probe(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `command` (a caller of the cluster) in the background, from outside the checkout, output captured."""
    return subprocess.Popen(command, env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _connect(address: str) -> list[str]:
    return [sys.executable, "-c", f"import ray; ray.init(address={address!r}); print('CONNECTED', ray.get(ray.put(7)))"]


def _confined_worker(gcs: str, hidden: Path, ray_temp: str, env: dict[str, str]) -> subprocess.Popen:
    """Start a worker node joining `gcs` in a mount namespace of its own, where `hidden` is an empty tmpfs."""
    start = [str(RAY_BIN / "ray"), "start", "--address", gcs, "--block", "--num-cpus", "1", "--temp-dir", ray_temp,
             "--object-store-memory", "200000000", "--disable-usage-stats",
             *[arg for flag, port in zip(WORKER_PORT_FLAGS, free_ports(len(WORKER_PORT_FLAGS)), strict=True)
               for arg in (flag, str(port))]]
    script = 'mount -t tmpfs genlab-confined "$1" && shift && exec "$@"'
    return subprocess.Popen(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(hidden),
                             *start], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)


@pytest.mark.skipif(subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"]).returncode != 0,
                    reason="needs unprivileged user and mount namespaces (unshare) for a worker that cannot see the disk")
def test_token_cluster_refuses_callers_without_the_token_and_purifies_on_a_worker_blind_to_the_drivers_disk(tmp_path):
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32))
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH")}
    env.update({"PATH": f"{RAY_BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                "PYTHONPATH": f"{REPO / 'platform'}:{REPO}", "HOME": str(tmp_path / "home")})
    no_token = {**env, "RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}
    wrong_token = {**env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    hidden = tmp_path / "driver_work"  # the driver's work dir: the worker node sees an empty directory there
    torch.manual_seed(0)
    checkpoint = save_model(hidden / "models" / "ebm", build_ebm(EbmNetConfig(nf=4)), kind=EBM_KIND)
    cluster = start_head(env, prefix="raytok-", num_cpus=0, cwd=REPO,
                         extra=("--object-store-memory", "200000000", "--disable-usage-stats"))
    head, address, gcs, client_port, ray_temp = (cluster.process, cluster.address, cluster.gcs, cluster.client_port,
                                                 cluster.temp_dir)
    worker, started = None, time.time()
    try:
        assert jobs_api_up(head, address, env), "the Ray head did not come up"
        worker = _confined_worker(gcs, hidden, ray_temp, env)
        # The refused callers retry until they give up (~20-30 s): they run while the worker joins and the job runs.
        ray_cli = str(RAY_BIN / "ray")
        probes = {"job, no token": _probe([ray_cli, "job", "submit", "--address", address, "--", "true"], no_token),
                  "job, wrong token": _probe([ray_cli, "job", "submit", "--address", address, "--", "true"], wrong_token),
                  "GCS client, no token": _probe(_connect(gcs), no_token),
                  "GCS client, wrong token": _probe(_connect(gcs), wrong_token),
                  "Ray client, no token": _probe(_connect(f"ray://127.0.0.1:{client_port}"), no_token),
                  "Ray client, token": _probe(_connect(f"ray://127.0.0.1:{client_port}"), env)}
        deadline = time.time() + HEAD_START_S
        while len([n for n in cluster_state("nodes", address, env) if n["state"] == "ALIVE"]) < 2:
            assert worker.poll() is None and time.time() < deadline, "the confined worker node did not join"
            time.sleep(2)
        joined = time.time()
        job = submit_job(address, ["python", "tests/integration/purify_on_confined_worker.py", str(checkpoint)], env,
                         timeout=600)
        print(f"[token cluster] head + confined worker up in {joined - started:.0f} s, job {time.time() - joined:.0f} s")
        outputs = {name: probe.communicate(timeout=120)[0] for name, probe in probes.items()}
        codes = {name: probe.returncode for name, probe in probes.items()}
        if codes["Ray client, token"] != 0:  # the client server process can fail to start once on a loaded machine
            server_logs = "".join(path.read_text(errors="replace")[-2000:]
                                  for path in Path(ray_temp).glob("session_latest/logs/ray_client_server_*.err"))
            retry = _probe(_connect(f"ray://127.0.0.1:{client_port}"), env)
            outputs["Ray client, token"] = retry.communicate(timeout=120)[0] + "\nfirst try's server log:\n" + server_logs
            codes["Ray client, token"] = retry.returncode
    finally:
        if worker is not None:
            worker.terminate()
        stop_cluster(head, ray_temp)
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    line = json.loads([text for text in job.stdout.splitlines() if text.startswith("{")][-1])
    assert line["driver_sees"] and line["node_sees"] and not any(line["node_sees"].values()), line
    assert line["actor_nodes"] and line["driver_node"] not in line["actor_nodes"], line  # the actor ran on the worker
    assert line["equal"], "the worker's purification differs from the driver's with the same weights"
    assert codes["Ray client, token"] == 0 and "CONNECTED 7" in outputs["Ray client, token"], outputs["Ray client, token"]
    refused = {name: (code, outputs[name][-500:]) for name, code in codes.items() if name != "Ray client, token"}
    assert all(code != 0 and "CONNECTED" not in text for code, text in refused.values()), refused
    assert "Missing authentication token" in outputs["job, no token"]
    assert "Invalid authentication token" in outputs["job, wrong token"]
    assert "Unauthenticated" in outputs["GCS client, wrong token"]
