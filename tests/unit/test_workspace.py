"""Caches and outputs land in the workspace (genlab.workspace): the cwd locally, `$GENLAB_HOME` when set, and never in
the temporary copy of the upload a `ray job submit --working-dir` job runs in (integration/test_ray_job.py submits one)."""

import json

import pytest

from genlab.cli import parse_job_args
from genlab.sweep.config import SweepConfig
from genlab.workspace import JOB_CONFIG_ENV, WORKSPACE_ENV, in_workspace, workspace_line, workspace_root

UPLOADED_JOB = json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"}, "metadata": {}})


@pytest.fixture
def plain_env(monkeypatch, tmp_path):
    """No GENLAB_HOME, not in a Ray job, HOME and the cwd in tmp_path."""
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    monkeypatch.delenv(JOB_CONFIG_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_local_run_keeps_its_caches_and_outputs_in_the_current_directory(plain_env):
    assert workspace_root() == plain_env
    assert SweepConfig().work_dir == str(plain_env / ".genlab")
    assert parse_job_args("x", None, ["--out", "out/sweep"]).out == plain_env / "out" / "sweep"


def test_a_job_running_in_its_uploaded_package_keeps_them_in_the_home_directory(plain_env, monkeypatch):
    package = plain_env / "session_1" / "runtime_resources" / "working_dir_files" / "_ray_pkg_0123456789abcdef"
    package.mkdir(parents=True)
    monkeypatch.chdir(package)
    monkeypatch.setenv(JOB_CONFIG_ENV, UPLOADED_JOB)
    stable = plain_env / "home" / "genlab-work"
    assert workspace_root() == stable
    assert SweepConfig().work_dir == str(stable / ".genlab")
    assert in_workspace("out/defense_sweep") == stable / "out" / "defense_sweep"
    assert "set GENLAB_HOME" in workspace_line(SweepConfig().work_dir, in_workspace("out"))


def test_a_job_submitted_without_an_upload_runs_where_it_was_started(plain_env, monkeypatch):
    monkeypatch.setenv(JOB_CONFIG_ENV, json.dumps({"runtime_env": {"env_vars": {"A": "1"}}, "metadata": {}}))
    assert workspace_root() == plain_env


def test_genlab_home_chooses_the_workspace_and_absolute_paths_stay_as_given(plain_env, monkeypatch):
    monkeypatch.setenv(JOB_CONFIG_ENV, UPLOADED_JOB)
    monkeypatch.setenv(WORKSPACE_ENV, str(plain_env / "shared"))
    assert SweepConfig().work_dir == str(plain_env / "shared" / ".genlab")
    assert SweepConfig(work_dir=str(plain_env / "elsewhere")).work_dir == str(plain_env / "elsewhere")
    line = workspace_line(SweepConfig().work_dir, in_workspace("out/defense_sweep"))
    assert f"caches in {plain_env / 'shared' / '.genlab'}, outputs in {plain_env / 'shared' / 'out'}" in line
