"""What the generative integration tests share: the records behind the fixtures of tests/integration/conftest.py
(the small EBM trained once per session by the real job, the blend-poisoned digits), the outcome measure the
blend tests compare, and a training job killed and resumed, with its checks."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.helpers import PYTHON, REPO, job_env, run_job, run_job_main, sqlite_store

EBM_PURIFY_T = 150  # Langevin steps of the EBM purifier in the blend tests (the paper's T)


@dataclass(frozen=True)
class TrainedEbm:
    """The EBM trained by jobs/train_ebm.py (conf/train_ebm.yaml), and what its kill/resume runs printed."""

    tracking_uri: str  # the sqlite MLflow store the job logged and registered to
    out_dir: Path  # the job's --out; the final EBM is out_dir / "model"
    killed_at_checkpoint: str  # the LATEST checkpoint when the first run was killed, e.g. step-0000050
    resume_output: str  # stdout of the second run, which resumed from it


@dataclass(frozen=True)
class BlendPoisonedDigits:
    """The digits training set with the default blend poisons in place (epsilon 32, 8% of rows, target class 0)."""

    images: object  # uint8 [N, 16, 16, 1]
    labels: object  # int64 [N]
    poison: object  # the PoisonSet
    undefended: tuple[float, float]  # (natural accuracy, poison success) of the small CNN trained on it, each 0..1


def blend_outcome(images, labels, poison, digits) -> tuple[float, float]:
    """Return (natural accuracy, success of the blend `poison`), each 0..1, of the small CNN (seed 0) trained on
    `images` with `labels`, scored on digits' test set."""
    from genlab.train.classifier import ClassifierConfig, train_classifier
    from genlab.train.evaluation import natural_accuracy, poison_success_rate

    train, test = digits
    classifier = train_classifier(images, labels, len(train.classes), ClassifierConfig(), seed=0)
    return natural_accuracy(classifier, test), poison_success_rate(classifier, test, poison)


def run_killed_then_resumed(command: list[str], latest: Path, log: Path, env: dict[str, str]) -> tuple[str, str]:
    """Run `command` in `log`'s folder, SIGKILL it once `latest` (its checkpoint pointer) appears, run it again to
    the end.

    Returns (the checkpoint LATEST named at the kill, the second run's stdout); asserts both runs worked.
    """
    with open(log, "w") as out:
        first = subprocess.Popen(command, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 900
        while not latest.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        first.kill()
        first.wait()
    assert latest.exists(), log.read_text()[-3000:]
    killed_at = latest.read_text().strip()
    second = subprocess.run(command, cwd=log.parent, env=env, capture_output=True, text=True, timeout=1800)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return killed_at, second.stdout


def train_killed_then_resumed(kind: str, root: Path) -> tuple[str, Path, str, str]:
    """Run jobs/train_<kind>.py (kind "ebm" or "ddpm") with conf/train_<kind>.yaml on one torch thread, its --out
    root/<kind> and its MLflow store in `root`; SIGKILL it after its first checkpoint and rerun it to the end.

    Returns (the store's tracking URI, the job's --out folder, the checkpoint LATEST named at the kill, the
    second run's stdout).
    """
    uri, out = sqlite_store(root), root / kind
    command = [PYTHON, str(REPO / "jobs" / f"train_{kind}.py"), "--config", str(REPO / "conf" / f"train_{kind}.yaml"),
               "--out", str(out)]
    killed_at, resumed = run_killed_then_resumed(command, out / "checkpoints" / "LATEST", root / "first.log",
                                                 job_env(uri, OMP_NUM_THREADS="1"))
    return uri, out, killed_at, resumed


def assert_resumed_once(trained, kind: str, cfg, metric: str):
    """Check a training job (`kind` "ebm" or "ddpm", config `cfg`) killed at `trained.killed_at_checkpoint` and
    rerun: the rerun resumed from that checkpoint, its one MLflow run in experiment train-<kind> finished, and
    `metric` was logged every log_every steps up to the last iteration, steps re-run after the kill repeating
    their values exactly. Returns (the MlflowClient of `trained.tracking_uri`, that run)."""
    resumed_at = int(trained.killed_at_checkpoint.split("-")[1])
    assert 0 < resumed_at < cfg.iterations and resumed_at % cfg.checkpoint_every == 0
    assert f"resuming {kind} training from" in trained.resume_output
    assert f"(iteration {resumed_at})" in trained.resume_output  # from the checkpoint, not from 0
    client = MlflowClient(trained.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(f"train-{kind}").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["genlab.resumed_from"] == str(resumed_at)
    history = client.get_metric_history(run.info.run_id, metric)
    assert max(m.step for m in history) == cfg.iterations and min(m.step for m in history) == cfg.log_every
    by_step: dict[int, set[float]] = {}
    for entry in history:
        by_step.setdefault(entry.step, set()).add(entry.value)
    assert all(len(values) == 1 for values in by_step.values())  # steps re-run after the kill repeat exactly
    return client, run


def assert_rerun_does_nothing(job: str, out_dir: Path, client: MlflowClient, registered_model: str) -> None:
    """Check that jobs/`job` rerun on its finished `out_dir` exits 0 saying "nothing to do" and registers no second
    version of `registered_model` in `client`'s store."""
    rerun = run_job([f"jobs/{job}", "--out", str(out_dir)], client.tracking_uri, timeout=600)
    assert rerun.returncode == 0 and "nothing to do" in rerun.stdout
    assert len(client.search_model_versions(f"name = '{registered_model}'")) == 1


def train_with_data_switch(job: str, tiny: list[str], switch: str, registered: str, out: Path, monkeypatch,
                           capsys) -> Path:
    """Run jobs/<job>.py on conf/<job>.yaml with the `tiny` overrides and one training-data `switch` (a poison or
    another dataset); assert it registered `registered` version 1 and said it poisoned exactly when the switch
    is a poison. Returns the trained model's directory."""
    args = ["--config", str(REPO / "conf" / f"{job}.yaml"), "--out", str(out), *tiny, switch]
    assert run_job_main(f"{job}.py", args, monkeypatch) == 0
    printed = capsys.readouterr().out
    assert f"registered {registered} version 1" in printed
    assert ("poisoned by blend: 115 rows" in printed) == ("poison" in switch)  # 8% of the 1,438 digits
    return out / "model"
