"""Where jobs keep their caches and outputs: relative work dirs and `--out` paths resolve against the workspace.

The workspace is `$GENLAB_HOME` when set (on a cluster: storage every node mounts, as the
cluster files set it). Otherwise it is the current directory, except in a job submitted with
`ray job submit --working-dir ...`: that job runs in Ray's unpacked copy of the upload
(`<session>/runtime_resources/working_dir_files/_ray_pkg_*`), which goes away with the Ray
session, so its workspace is `~/genlab-work` and a second job finds the first one's poisons,
models and purified sets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

WORKSPACE_ENV = "GENLAB_HOME"  # set it to choose the workspace
UPLOADED_JOB_WORKSPACE = "~/genlab-work"  # the workspace of a job running in Ray's unpacked upload
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # what Ray's job supervisor gives the driver: its runtime env


def runs_in_uploaded_package() -> bool:
    """Return True if this process is a Ray job driver whose working directory is an uploaded package
    (the job's runtime env has a `working_dir`, e.g. from `ray job submit --working-dir .`)."""
    try:
        runtime_env = json.loads(os.environ.get(JOB_CONFIG_ENV) or "{}").get("runtime_env") or {}
    except (ValueError, AttributeError):
        return False
    return bool(runtime_env.get("working_dir"))


def workspace_root() -> Path:
    """Return the absolute workspace directory: `$GENLAB_HOME`, `~/genlab-work` in an uploaded job, else the cwd."""
    if os.environ.get(WORKSPACE_ENV):
        return Path(os.environ[WORKSPACE_ENV]).expanduser().resolve()
    if runs_in_uploaded_package():
        return Path(UPLOADED_JOB_WORKSPACE).expanduser().resolve()
    return Path.cwd()


def in_workspace(path: str | Path) -> Path:
    """Return `path` as an absolute path: `~` expanded, a relative path taken under `workspace_root()`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else workspace_root() / path


def workspace_line(work_dir: str | Path, out_dir: str | Path) -> str:
    """Return the line a job prints to say where its caches (`work_dir`) and outputs (`out_dir`) are."""
    why = f"${WORKSPACE_ENV}" if os.environ.get(WORKSPACE_ENV) else (
        f"Ray's uploaded working dir is deleted with the session; set {WORKSPACE_ENV} to choose"
        if runs_in_uploaded_package() else f"the current directory; set {WORKSPACE_ENV} to choose")
    return f"[genlab] caches in {work_dir}, outputs in {out_dir} (workspace {workspace_root()}: {why})"
