"""Shared fixtures: a real local Ray session, a temp sqlite MLflow store, the tiny digits data, the
small EBM trained once per session by the real job, and the blend-poisoned digits before and after
that EBM's purification (used by test_ebm.py and test_ddpm.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# `make test` runs on two pytest-xdist workers. Tests are scheduled by group, a whole group on one worker:
# each file is a group (its module fixtures are built once), and files that share a session fixture or
# a Ray cluster share one. Groups are queued heaviest first (serial CPU durations on the 2-core machine:
# ray_session about 12 min, generative 8, ray_head 3), so the two workers finish together; the others
# follow in collection order. Measured there: 34 min serial, 31 min on two workers (the Ray tests
# already keep both cores busy, so the gain is the torch-only tests'). The scheduler is our own
# (pytest_xdist_make_scheduler): xdist 3.8's xdist_group marks rename node ids through an attribute
# pytest 9 no longer reads, so --dist loadgroup schedules them test by test.
RAY_SESSION_FILES = ("test_causal_jobs.py", "test_latent_augment.py", "test_purifiers.py", "test_sweep.py",
                     "test_sweep_search.py")  # every file with a test on `ray_session` (one local Ray per run)
TEST_GROUPS = {
    **{name: "ray_session" for name in RAY_SESSION_FILES},
    "test_ebm.py": "generative", "test_ddpm.py": "generative",  # trained_ebm, blend_poisoned, ebm_purified_blend
    "test_ray_job.py": "ray_head", "test_autoscaling.py": "ray_head",  # `ray start --head`, one ~/.ray/auth_token
}
HEAVIEST_FIRST = ("ray_session", "generative", "ray_head", "test_sweep_resume.py", "test_craft_poisons.py",
                  "test_targeted_efficacy.py", "test_ccgm.py", "test_sleeper_agent.py")


def scheduling_group(file_name: str) -> str:
    """Return the scheduling group of the test file `file_name` (its name unless TEST_GROUPS joins it to others)."""
    return TEST_GROUPS.get(file_name, file_name)


def pytest_xdist_make_scheduler(config, log):
    """Return the xdist scheduler that sends each test group (`scheduling_group`) whole to one worker."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling_group(Path(nodeid.split("::", 1)[0]).name)

    return GroupScheduling(config, log)


def pytest_addoption(parser):
    """Add --run-long: run the tests marked `long` (skipped otherwise; `make test-long` runs only them)."""
    parser.addoption("--run-long", action="store_true", help="run the tests marked long (an hour or more on 2 cores)")


def pytest_collection_modifyitems(config, items):
    """Order the tests heaviest group first (file order kept within a rank); skip the `long` tests without
    --run-long; refuse a test on `ray_session` whose file is not in RAY_SESSION_FILES (it would start a
    second local Ray beside the group's)."""
    if not config.getoption("--run-long"):
        skip_long = pytest.mark.skip(reason="long: run it with make test-long")
        for item in items:
            if "long" in item.keywords:
                item.add_marker(skip_long)
    stray = sorted({item.path.name for item in items if "ray_session" in getattr(item, "fixturenames", ())}
                   - set(RAY_SESSION_FILES))
    if stray:
        raise pytest.UsageError(f"tests/conftest.py: add {', '.join(stray)} to RAY_SESSION_FILES (they use ray_session)")
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(scheduling_group(item.path.name), len(rank)))


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


def ensure_ray_auth_token(ray: Path, env: dict[str, str]) -> None:
    """Create ~/.ray/auth_token with the `ray` CLI if it is missing, as `ray.init` does: Ray 2.60's
    `ray start --head` with RAY_AUTH_MODE=token refuses to start without one, so a fresh machine whose
    first Ray is a CLI head needs it made first."""
    subprocess.run([str(ray), "get-auth-token", "--generate"], env=env, check=True, capture_output=True)


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray (2 CPUs, 500 MB object store) shared by every test that asks for it."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("PYTHONPATH", str(REPO / "platform"))
        ray.init(num_cpus=2, object_store_memory=500_000_000, include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO / "platform")}})
    yield ray


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A fresh sqlite MLflow store in tmp_path, set through MLFLOW_TRACKING_URI; yields the URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    yield uri


@pytest.fixture(scope="session")
def digits():
    """(train, test) ImageSets of the embedded digits dataset at 16x16."""
    from genlab.data import DatasetConfig, load_dataset

    return load_dataset(DatasetConfig())


@dataclass(frozen=True)
class TrainedEbm:
    """The EBM trained by jobs/train_ebm.py (conf/train_ebm.yaml), and what its kill/resume runs printed."""

    tracking_uri: str  # the sqlite MLflow store the job logged and registered to
    out_dir: Path  # the job's --out; the final EBM is out_dir / "model"
    killed_at_checkpoint: str  # the LATEST checkpoint when the first run was killed, e.g. step-0000050
    resume_output: str  # stdout of the second run, which resumed from it


def job_env(tracking_uri: str) -> dict[str, str]:
    """Return the environment for a job subprocess: its MLflow store, one torch thread, genlab importable."""
    return {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "platform"), os.environ.get("PYTHONPATH")]))}


def run_killed_then_resumed(command: list[str], latest: Path, log: Path, env: dict[str, str]) -> tuple[str, str]:
    """Run `command` in `log`'s folder, SIGKILL it once `latest` (its checkpoint pointer) appears, run it again to the end.

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


@pytest.fixture(scope="session")
def trained_ebm(tmp_path_factory) -> TrainedEbm:
    """Run jobs/train_ebm.py (conf/train_ebm.yaml, a few CPU minutes), SIGKILL it after its first checkpoint, rerun it to the end."""
    root = tmp_path_factory.mktemp("train_ebm")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    command = [PYTHON, str(REPO / "jobs" / "train_ebm.py"), "--config", str(REPO / "conf" / "train_ebm.yaml"),
               "--out", str(root / "out")]
    killed_at, resumed = run_killed_then_resumed(command, root / "out" / "checkpoints" / "LATEST", root / "first.log",
                                                 job_env(uri))
    return TrainedEbm(uri, root / "out", killed_at, resumed)


EBM_PURIFY_T = 150  # Langevin steps of the EBM purifier in the blend tests (the paper's T)


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


@pytest.fixture(scope="session")
def blend_poisoned(digits) -> BlendPoisonedDigits:
    """The blend-poisoned digits training set and the undefended small CNN's outcome on it."""
    from genlab.attacks import BlendConfig, craft_poisons

    train = digits[0]
    poison = craft_poisons(BlendConfig(), train, seed=0)
    poisoned = train.replace_rows(poison.base_indices, poison.images, poison.labels)
    return BlendPoisonedDigits(poisoned.images, poisoned.labels, poison,
                               blend_outcome(poisoned.images, poisoned.labels, poison, digits))


@pytest.fixture(scope="session")
def ebm_purified_blend(trained_ebm, blend_poisoned, tmp_path_factory):
    """uint8 images: the blend-poisoned training set after PureGen-EBM at T = EBM_PURIFY_T (seed 0), the EBM
    found through the MLflow model registry the training job registered it in. test_ddpm.py's
    PureGen-Naive runs its DDPM chain on these, so the 150-step chain over every row runs once."""
    import numpy as np

    from genlab.purify.ebm import EbmPurifier, EbmSettings

    settings = EbmSettings(registered_model="genlab-ebm-digits", langevin_steps=[EBM_PURIFY_T], device="cpu")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", trained_ebm.tracking_uri)
        patch.setenv("GENLAB_MODEL_CACHE", str(tmp_path_factory.mktemp("models")))
        purifier = EbmPurifier(settings, seed=0)
        rows = np.arange(len(blend_poisoned.images))
        return purifier.purify(blend_poisoned.images, rows)[EBM_PURIFY_T]
