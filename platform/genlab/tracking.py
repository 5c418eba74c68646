"""MLflow conventions: tracking URI, experiments, run tags, parameters, the run lifecycle, nested
trial runs and the model registry.

Embedded default: `sqlite:///<cwd>/mlflow.db` with artifacts in `<db dir>/mlartifacts`;
`MLFLOW_TRACKING_URI` overrides it (a shared server on a cluster). Every run carries the
tags `genlab.git_commit`, `genlab.version`, `genlab.dataset_hash` and `genlab.seed`.

- `tracked_run` is the one way a job opens its MLflow run: it records config, seed, code
  version and dataset hash, ends the run FINISHED (or the status the job chose), FAILED on an
  exception, KILLED on Ctrl-C or SIGTERM (`ray job stop`: SIGTERM, then SIGKILL 3 s later),
  ends its RUNNING child runs the same way, and re-raises.
- `NestedRunCallback` is the one Tune callback that mirrors each trial into a run nested under
  the job's run (the driver is the only MLflow writer).
- The registry functions log a checkpoint directory (`genlab.checkpoints`) as run artifacts,
  register it as a model version and download it back.
"""

from __future__ import annotations

import copy
import errno
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from ray import tune

import genlab
from genlab.cache_cap import mark_used
from genlab.checkpoints import INDEX
from genlab.config import flatten
from genlab.errors import CheckpointError
from genlab.workspace import in_workspace, workspace_root

MAX_PARAM_CHARS = 6000
TRIAL_TAG = "genlab.trial_name"  # the trial name on its nested run


def tracking_uri() -> str:
    """Return the tracking URI: `$MLFLOW_TRACKING_URI`, else the sqlite file in the workspace (`genlab.workspace`:
    the working dir, unless $GENLAB_HOME is set or a `ray job submit --working-dir` job runs in its upload)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace_root() / 'mlflow.db'}"


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


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int) -> None:
    """Log `metrics` (name -> finite or non-finite float) at `step`."""
    log_metric_batch(client, run_id, [(key, value, step) for key, value in metrics.items()])


def log_metric_batch(client: MlflowClient, run_id: str, items: list[tuple[str, float, int]]) -> None:
    """Log (name, value, step) triples in batches of 1000 (MLflow's per-request cap)."""
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, step) for key, value, step in items]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])


def numeric_metrics(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, float, int]]:
    """Return every number in a nested dict as (dotted key, value, step 0); a list of numbers becomes steps 1..n."""
    out: list[tuple[str, float, int]] = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(numeric_metrics(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            out.extend((name, float(v), step) for step, v in enumerate(value, start=1))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((name, float(value), 0))
    return out


def run_exists(client: MlflowClient, run_id: str) -> bool:
    """Return whether the client's store holds run `run_id`, not deleted."""
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except mlflow.exceptions.MlflowException:
        return False


def end_running_children(client: MlflowClient, experiment_id: str, parent_run_id: str, status: str) -> int:
    """End every run nested under `parent_run_id` that is still RUNNING with `status`; return how many."""
    children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}' "
                                                   "and attributes.status = 'RUNNING'")
    for child in children:
        client.set_terminated(child.info.run_id, status)
    return len(children)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM inside `tracked_run` (`ray job stop`, a cluster shutting down)."""


class TrackedRun:
    """An open MLflow run of a job: its client, ids, and the status it will end with (FINISHED unless set)."""

    def __init__(self, client: MlflowClient, experiment_id: str, run_id: str, resumed: bool) -> None:
        self.client, self.experiment_id, self.run_id, self.resumed = client, experiment_id, run_id, resumed
        self.final_status = "FINISHED"  # a job whose trials failed sets "FAILED" before leaving the block

    def finish_as(self, all_succeeded: bool) -> None:
        """End the run FINISHED if `all_succeeded`, else FAILED (the exception-free outcome of a sweep)."""
        self.final_status = "FINISHED" if all_succeeded else "FAILED"

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Log `metrics` at `step`."""
        log_metrics(self.client, self.run_id, metrics, step)

    def log_metric_tree(self, tree: dict[str, Any]) -> None:
        """Log every number of a nested dict (`numeric_metrics`: dotted names, a list of numbers as steps 1..n)."""
        log_metric_batch(self.client, self.run_id, numeric_metrics(tree))


@contextmanager
def tracked_run(experiment: str, *, run_name: str, config: Any, seed: int, dataset_hash: str,
                tags: dict[str, str] | None = None, resume_run_id: str | None = None) -> Iterator[TrackedRun]:
    """Open (or, with `resume_run_id`, reopen) a run of `experiment`; yield it as a `TrackedRun`.

    A new run gets `standard_tags` plus `tags` and the flattened `config` as params. On leaving
    the block the run ends `run.final_status` (FINISHED by default); an exception ends it FAILED,
    Ctrl-C or SIGTERM ends it KILLED, its child runs still RUNNING (Tune trials) end the same
    way, and the exception propagates. SIGTERM is turned into
    `Terminated` (a KeyboardInterrupt) only while the block runs, and only in the main thread.
    A `resume_run_id` the current store does not hold (the job moved to another
    `MLFLOW_TRACKING_URI`) starts a new run there, tagged `genlab.resumed_run_id`.
    """
    uri = tracking_uri()
    client = MlflowClient(uri)
    exp_id = experiment_id(experiment)
    if resume_run_id is not None and not run_exists(client, resume_run_id):
        print(f"[genlab] run {resume_run_id} is not in the MLflow store {uri}: starting a new run there "
              f"(tag genlab.resumed_run_id)", flush=True)
        tags = {**(tags or {}), "genlab.resumed_run_id": resume_run_id}
        resume_run_id = None
    if resume_run_id is not None:
        client.update_run(resume_run_id, status="RUNNING")
        run = TrackedRun(client, exp_id, resume_run_id, resumed=True)
    else:
        run_id = client.create_run(exp_id, run_name=run_name,
                                   tags={**standard_tags(dataset_hash=dataset_hash, seed=seed), **(tags or {})}
                                   ).info.run_id
        log_params(client, run_id, params_for(config))
        run = TrackedRun(client, exp_id, run_id, resumed=False)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_sigterm(signum: int, frame: Any) -> None:
            raise Terminated(f"signal {signum}")
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield run
    except KeyboardInterrupt:
        end_running_children(client, exp_id, run.run_id, "KILLED")
        client.set_terminated(run.run_id, "KILLED")
        raise
    except BaseException:
        end_running_children(client, exp_id, run.run_id, "FAILED")
        client.set_terminated(run.run_id, "FAILED")
        raise
    else:
        client.set_terminated(run.run_id, run.final_status)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_RESTORED_AS: list["NestedRunCallback"] = []  # callbacks standing in for unpickled ones (innermost last)


def _restored_callback() -> "NestedRunCallback":
    """Return the callback that stands in for a pickled `NestedRunCallback` (`replacing_restored`)."""
    if not _RESTORED_AS:
        raise CheckpointError("a Tune experiment's NestedRunCallback is restored only inside replacing_restored()")
    return _RESTORED_AS[-1]


class NestedRunCallback(tune.Callback):
    """Mirrors every Tune trial into an MLflow run nested under `parent_run_id`, from the driver.

    A trial's run is keyed by its name (`trial_name`, tag `genlab.trial_name`): a resumed job finds
    the runs of its first attempt, keeps finished ones as they are and replaces unfinished ones, so
    no trial ends with two. An attempt Tune retries (`max_failures`) is deleted; the next attempt's
    run holds the earlier errors as `attempts/error-<n>.txt` and the tag `genlab.retries`. A failed
    trial's run ends FAILED with its error's last line as tag `error` and the text as `error.txt`.
    Subclasses say what a trial's run holds: `trial_name`, `trial_params`, `trial_tags`,
    `on_run_start` (artifacts), `result_metrics` and `on_run_finished`.

    Pickled with a Tune experiment, a callback is stored as a reference only: `tune.Tuner.restore`
    inside `replacing_restored()` of the resumed job's fresh callback (which knows from MLflow what
    finished, and the job's current run) gets that one back, with Ray's public API only.
    """

    def __init__(self, *, tracking_uri: str, experiment_id: str, parent_run_id: str, tags: dict[str, str],
                 params: dict[str, str]) -> None:
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.tags, self.params = tags, params
        self.run_ids: dict[str, str] = {}  # trial name -> MLflow run id of this attempt
        self.finished: set[str] = set()  # names of trials that completed (in this or an earlier attempt)
        self.finished_runs: dict[str, Any] = {}  # trial name -> its finished run of an earlier attempt
        self.stale: dict[str, str] = {}  # trial name -> unfinished run of an earlier attempt
        self.errors: dict[str, list[str]] = {}  # trial name -> error texts of its failed, retried attempts
        for run in self.client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'"):
            name = run.data.tags.get(TRIAL_TAG)
            if run.info.status == "FINISHED" and name:
                self.finished.add(name)
                self.finished_runs[name] = run
            elif name:
                self.stale[name] = run.info.run_id

    def __reduce__(self) -> tuple:
        return (_restored_callback, ())

    def __copy__(self) -> "NestedRunCallback":
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self, memo: dict) -> "NestedRunCallback":
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    @contextmanager
    def replacing_restored(self) -> Iterator[None]:
        """Within the block, a `NestedRunCallback` unpickled (a Tune experiment being restored) is this one."""
        _RESTORED_AS.append(self)
        try:
            yield
        finally:
            _RESTORED_AS.pop()

    @property
    def client(self) -> MlflowClient:
        """Return a client of the tracking store (made per use: Tune may copy the callback)."""
        return MlflowClient(self.tracking_uri)

    def trial_name(self, trial: Any) -> str:
        """Return the trial's name (default: its config's `name`)."""
        return trial.config["name"]

    def trial_params(self, trial: Any) -> dict[str, str]:
        """Return the params the trial's run gets beside the job's own."""
        return {}

    def trial_tags(self, trial: Any) -> dict[str, str]:
        """Return the tags the trial's run gets beside the job's own."""
        return {}

    def on_run_start(self, run_id: str, trial: Any) -> None:
        """Log what the trial's run holds from its start (artifacts); nothing by default."""

    def result_metrics(self, trial: Any, result: dict) -> list[Metric]:
        """Return the metrics of one reported `result` to log (default: none)."""
        return []

    def on_run_finished(self, run_id: str, trial: Any) -> None:
        """Log what the trial's run holds once the trial completed, before the run ends FINISHED."""

    def active_run(self, trial: Any) -> str | None:
        """Return the run id of the trial's current attempt, None if it finished in an earlier attempt."""
        name = self.trial_name(trial)
        return None if name in self.finished else self.run_ids.get(name)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        name = self.trial_name(trial)
        if name in self.finished or name in self.run_ids:
            return
        if name in self.stale:
            self.client.delete_run(self.stale.pop(name))
        run_id = start_child_run(self.client, experiment=self.experiment_id, parent_run_id=self.parent_run_id,
                                 run_name=name, tags={**self.tags, TRIAL_TAG: name, **self.trial_tags(trial)})
        self.run_ids[name] = run_id
        for attempt, text in enumerate(self.errors.get(name, []), start=1):
            self.client.log_text(run_id, text, f"attempts/error-{attempt}.txt")
        if name in self.errors:
            self.client.set_tag(run_id, "genlab.retries", str(len(self.errors[name])))
        log_params(self.client, run_id, {**self.params, **self.trial_params(trial)})
        self.on_run_start(run_id, trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.active_run(trial)
        metrics = self.result_metrics(trial, result) if run_id is not None else []
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.active_run(trial)
        if run_id is None:
            return
        self.on_run_finished(run_id, trial)
        self.client.set_terminated(run_id, "FINISHED")
        self.finished.add(self.trial_name(trial))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed attempt Tune will retry: keep its error for the next attempt's run, delete its own run."""
        run_id = self.active_run(trial)
        if run_id is None:
            return
        name = self.trial_name(trial)
        self.errors.setdefault(name, []).append(trial_error_text(trial))
        self.client.delete_run(self.run_ids.pop(name))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.active_run(trial)
        if run_id is None:
            return
        text = trial_error_text(trial)
        self.client.set_tag(run_id, "error", text.strip().splitlines()[-1][:5000])
        self.client.log_text(run_id, text, "error.txt")
        self.client.set_terminated(run_id, "FAILED")



def trial_error_text(trial: Any) -> str:
    """Return the traceback Tune recorded for the trial's last failure (or its error's text)."""
    error_file = Path(trial.error_file) if getattr(trial, "error_file", None) else None
    return error_file.read_text() if error_file and error_file.exists() else str(trial.get_error() or "unknown error")


def log_checkpoint_artifacts(client: Any, run_id: str, path: str | Path, artifact_path: str) -> str:
    """Log a checkpoint directory's files under `artifact_path` of an MLflow run; return its artifact URI."""
    client.log_artifacts(run_id, str(path), artifact_path)
    return f"runs:/{run_id}/{artifact_path}"


def register_checkpoint(client: Any, run_id: str, artifact_path: str, name: str, tags: dict[str, str] | None = None) -> str:
    """Register the run's logged checkpoint directory as a new version of model `name`; return the version."""
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="genlab checkpoint directory (safetensors + checkpoint.json)")
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
    version = client.create_model_version(name, source, run_id=run_id, tags=tags or {})
    return str(version.version)


def resolve_registered_checkpoint(name: str, version_or_alias: str | int | None = None, *,
                                  cache_dir: str | Path | None = None) -> Path:
    """Download a registered checkpoint (a version number, an alias, or None/`latest`); return its local directory.

    Files are cached under `cache_dir` (default `model_cache_root()`) as `<name>/<version>`; concurrent
    callers share one complete copy (download to a temp directory, then rename). Each call marks the
    copy used (its `checkpoint.json`'s mtime), the clock of the cache's size cap (`genlab.cache_cap`).
    """
    client = MlflowClient(tracking_uri())
    wanted = "latest" if version_or_alias is None else str(version_or_alias)
    try:
        if wanted.isdigit():
            version = client.get_model_version(name, wanted)
        elif wanted == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise CheckpointError(f"registered model {name!r} has no versions")
            version = max(versions, key=lambda v: int(v.version))
        else:
            version = client.get_model_version_by_alias(name, wanted)
    except mlflow.exceptions.MlflowException as exc:
        raise CheckpointError(f"registered model {name!r} version/alias {wanted!r} not found in "
                              f"{tracking_uri()}: {str(exc).splitlines()[0]}") from None
    target = Path(cache_dir or model_cache_root()) / name / str(version.version)
    if not (target / INDEX).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version.version}."))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(tmp),
                                                tracking_uri=tracking_uri())
            downloaded = next((p.parent for p in tmp.rglob(INDEX)), None)
            if downloaded is None:
                raise CheckpointError(f"registered model {name!r} version {version.version} holds no {INDEX}")
            try:
                os.rename(downloaded, target)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    mark_used(target, INDEX)
    return target


def model_cache_root() -> Path:
    """Return the directory registered models are downloaded to: `$GENLAB_MODEL_CACHE`, else `.genlab/models` in the
    workspace."""
    return Path(os.environ.get("GENLAB_MODEL_CACHE") or in_workspace(".genlab/models"))
