"""A Ray head of a test's own, driven through the `ray` CLI (integration/test_ray_job.py, test_autoscaling.py):
free ports for it, the auth token a CLI head needs, waiting for its jobs API, `ray job submit`, `ray list`, and
stopping that cluster only (never `ray stop`, which would stop every Ray on the machine)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO

RAY_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"  # `ray` of the environment running the tests
# Flags that give a node's agents their own ports: the test session's local Ray holds the defaults.
AGENT_PORT_FLAGS = ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port",
                    "--runtime-env-agent-port", "--ray-client-server-port")
HEAD_START_S = 120  # how long a head may take to answer `ray job list`, and its job agent to take a job


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports free on 127.0.0.1 now (bound all at once, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def agent_port_args(ports: list[int]) -> list[str]:
    """Return the `ray start` arguments giving the node's agents `ports` (one per AGENT_PORT_FLAGS entry)."""
    return [arg for flag, port in zip(AGENT_PORT_FLAGS, ports, strict=True) for arg in (flag, str(port))]


@dataclass(frozen=True)
class CliHead:
    """A `ray start --head --block` of a test's own (see `start_head`)."""

    process: subprocess.Popen
    address: str  # the dashboard's http address, for `ray job ...`
    gcs: str  # 127.0.0.1:<port>, for `ray start --address` and `ray.init`
    client_port: int  # the Ray client server's port (ray://127.0.0.1:<port>)
    temp_dir: str  # its --temp-dir, short: Ray's unix socket paths have a length limit


def start_head(env: dict[str, str], *, prefix: str, num_cpus: int, extra: tuple[str, ...] = (),
               cwd: Path | None = None) -> CliHead:
    """Start a head node on 127.0.0.1 with ports of its own and a temp dir under /tmp named `prefix...`; `extra`
    goes to `ray start` as it is. The caller waits with `jobs_api_up` and stops it with `stop_cluster`."""
    dashboard, gcs, *agent_ports = free_ports(2 + len(AGENT_PORT_FLAGS))
    temp_dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    process = subprocess.Popen(
        [str(RAY_BIN / "ray"), "start", "--head", "--block", "--num-cpus", str(num_cpus), "--dashboard-host",
         "127.0.0.1", "--dashboard-port", str(dashboard), "--port", str(gcs), "--temp-dir", temp_dir, *extra,
         *agent_port_args(agent_ports)],
        cwd=cwd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return CliHead(process, f"http://127.0.0.1:{dashboard}", f"127.0.0.1:{gcs}",
                   agent_ports[AGENT_PORT_FLAGS.index("--ray-client-server-port")], temp_dir)


def ensure_ray_auth_token(env: dict[str, str]) -> None:
    """Create ~/.ray/auth_token with the `ray` CLI if it is missing, as `ray.init` does: Ray 2.60's
    `ray start --head` with RAY_AUTH_MODE=token refuses to start without one, so a fresh machine whose
    first Ray is a CLI head needs it made first."""
    subprocess.run([str(RAY_BIN / "ray"), "get-auth-token", "--generate"], env=env, check=True, capture_output=True)


def jobs_api_up(head: subprocess.Popen, address: str, env: dict[str, str], log: Path | None = None) -> bool:
    """Wait until the head started as `head` answers `ray job list` at `address` (the dashboard's http address).

    Returns True once it answers, False if the head process exits first; asserts it answers within HEAD_START_S
    (the failure shows the end of the head's `log`, if given).
    """
    deadline = time.time() + HEAD_START_S
    while head.poll() is None:
        listed = subprocess.run([str(RAY_BIN / "ray"), "job", "list", "--address", address], env=env,
                                capture_output=True, timeout=HEAD_START_S)
        if listed.returncode == 0:
            return True
        assert time.time() < deadline, (f"the Ray head at {address} did not answer in {HEAD_START_S} s:\n"
                                        + (log.read_text()[-3000:] if log else ""))
        time.sleep(2)
    return False


def submit_job(address: str, entrypoint: list[str], env: dict[str, str], *, timeout: float,
               options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `ray job submit --address address [options] -- entrypoint` from the checkout and return the finished
    submit (stdout and stderr as text). The dashboard answers before the node's job agent is up, so a submit
    refused with "No available agent" is repeated for up to HEAD_START_S."""
    command = [str(RAY_BIN / "ray"), "job", "submit", "--address", address, *options, "--", *entrypoint]
    deadline = time.time() + HEAD_START_S
    while True:
        job = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if "No available agent" not in job.stderr or time.time() > deadline:
            return job
        time.sleep(3)


def cluster_state(kind: str, address: str, env: dict[str, str]) -> list[dict]:
    """Return `ray list <kind>` (nodes, actors) of the cluster at `address`, dead entries included."""
    out = subprocess.run([str(RAY_BIN / "ray"), "list", kind, "--address", address, "--detail", "--format", "json",
                          "--limit", "1000"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def processes_of(temp_dir: str, group: int) -> list[int]:
    """Return the live pids in process group `group` or whose command line names `temp_dir` (this cluster's only)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            zombie = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            in_group = os.getpgid(int(entry.name)) == group
        except (OSError, ProcessLookupError, IndexError):
            continue
        if (in_group or temp_dir in cmdline) and not zombie:
            pids.append(int(entry.name))
    return pids


def stop_cluster(head: subprocess.Popen, temp_dir: str) -> None:
    """Stop this test's cluster only: SIGTERM its processes, then SIGKILL whatever is left after 20 s."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        for pid in processes_of(temp_dir, head.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline and processes_of(temp_dir, head.pid):
            head.poll()  # reap the head so its pid leaves the table
            time.sleep(1)
    head.wait(timeout=10)
