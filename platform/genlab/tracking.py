"""MLflow conventions: tracking URI, experiments, run tags, parameters and run lifecycle.

Embedded default: `sqlite:///<cwd>/mlflow.db` with artifacts in `<db dir>/mlartifacts`;
`MLFLOW_TRACKING_URI` overrides it (a shared server on a cluster). Every run carries the
tags `genlab.git_commit`, `genlab.version`, `genlab.dataset_hash` and `genlab.seed`.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

import genlab
from genlab.config import flatten

MAX_PARAM_CHARS = 6000


def tracking_uri() -> str:
    """Return the tracking URI: `$MLFLOW_TRACKING_URI`, else the sqlite file in the working dir."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def ui_command(uri: str | None = None) -> str:
    """Return the exact shell command that opens the MLflow UI on this store."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        return f"mlflow ui --backend-store-uri {uri}"
    return f"open {uri} in a browser (an MLflow server)"


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a sqlite store live beside the db file, not in whatever cwd a job has."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None


def experiment_id(name: str) -> str:
    """Return the id of experiment `name`, creating it (artifacts beside a sqlite store) if needed."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = _artifact_root(uri)
    try:
        return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    except mlflow.exceptions.MlflowException:  # created concurrently by another process
        return client.get_experiment_by_name(name).experiment_id


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Return the git commit of the genlab checkout (suffix `-dirty` if modified), or `unknown`."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("GENLAB_GIT_COMMIT", "unknown")


def standard_tags(*, dataset_hash: str, seed: int) -> dict[str, str]:
    """Return the reproducibility tags every genlab run carries."""
    return {"genlab.git_commit": git_commit(), "genlab.version": genlab.__version__,
            "genlab.dataset_hash": dataset_hash, "genlab.seed": str(seed)}


def params_for(config: Any) -> dict[str, str]:
    """Return a config flattened to MLflow params (long values truncated to MLflow's limit)."""
    return {key: value[:MAX_PARAM_CHARS] for key, value in flatten(config).items()}


def log_params(client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    """Log params in batches of 100 (MLflow's per-request cap)."""
    items = [mlflow.entities.Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start:start + 100])


def start_child_run(client: MlflowClient, *, experiment: str, parent_run_id: str, run_name: str,
                    tags: dict[str, str]) -> str:
    """Create a run nested under `parent_run_id` (tag `mlflow.parentRunId`); return its id."""
    all_tags = {"mlflow.parentRunId": parent_run_id, "mlflow.runName": run_name, **tags}
    return client.create_run(experiment, tags=all_tags, run_name=run_name).info.run_id
