"""The two lanes and how `make test` schedules them, and the fixtures both lanes use (the tiny digits data, a
blend PoisonSet file, single-threaded torch).

tests/unit/ is the fast lane (`make test-fast`: no Ray, no MLflow store, no job subprocess, no real training);
tests/integration/ holds the rest, every test there marked `slow` here. The integration fixtures (a local Ray,
a temp MLflow store, the session's trained EBM) are in tests/integration/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parent / "integration"

# `make test` runs on two pytest-xdist workers. Tests are scheduled by group, a whole group on one worker:
# each file is a group (its module fixtures are built once), and files that share a session fixture or
# a Ray cluster share one. Files are named by their path under tests/ (`lane_path`). Groups are queued
# heaviest first (serial CPU durations on the 2-core machine: ray_session about 12 min, generative 8,
# ray_head 3), so the two workers finish together; the others follow in collection order. Measured there:
# 34 min serial, 31 min on two workers (the Ray tests already keep both cores busy, so the gain is the
# torch-only tests'). The scheduler is our own (pytest_xdist_make_scheduler): xdist 3.8's xdist_group marks
# rename node ids through an attribute pytest 9 no longer reads, so --dist loadgroup schedules them test by test.
# Every file with a test on `ray_session` (one local Ray per run):
RAY_SESSION_FILES = ("integration/test_causal_jobs.py", "integration/test_latent_augment.py",
                     "integration/test_purifiers.py", "integration/test_sweep.py", "integration/test_sweep_search.py",
                     "integration/test_cluster_robustness_preemption.py", "integration/test_cluster_robustness_memory.py",
                     "integration/test_sweep_defenses.py", "integration/test_sweep_targeted.py")
TEST_GROUPS = {
    **{path: "ray_session" for path in RAY_SESSION_FILES},
    # trained_ebm, blend_poisoned, ebm_purified_blend
    "integration/test_ebm.py": "generative", "integration/test_ddpm.py": "generative",
    # `ray start --head`, one ~/.ray/auth_token
    "integration/test_ray_job.py": "ray_head", "integration/test_autoscaling.py": "ray_head",
    "integration/test_cluster_robustness_jobstop.py": "ray_head",
}
HEAVIEST_FIRST = ("ray_session", "generative", "ray_head", "integration/test_sweep_resume.py",
                  "integration/test_craft_poisons.py", "integration/test_targeted_efficacy.py",
                  "integration/test_ccgm.py", "integration/test_sleeper_agent.py")


def lane_path(nodeid: str) -> str:
    """Return the path of the test file of `nodeid` below tests/, e.g. 'integration/test_ebm.py'."""
    return "/".join(Path(nodeid.split("::", 1)[0]).parts[-2:])


def scheduling_group(nodeid: str) -> str:
    """Return the scheduling group of the test `nodeid`: its file's lane path unless TEST_GROUPS joins it to others."""
    path = lane_path(nodeid)
    return TEST_GROUPS.get(path, path)


def pytest_xdist_make_scheduler(config, log):
    """Return the xdist scheduler that sends each test group (`scheduling_group`) whole to one worker."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling_group(nodeid)

    return GroupScheduling(config, log)


def pytest_addoption(parser):
    """Add --run-long: run the tests marked `long` (skipped otherwise; `make test-long` runs only them)."""
    parser.addoption("--run-long", action="store_true", help="run the tests marked long (an hour or more on 2 cores)")


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/integration/ `slow`; skip the `long` tests without --run-long; refuse a test
    on `ray_session` whose file is not in RAY_SESSION_FILES (it would start a second local Ray beside the
    group's); order the tests heaviest group first (file order kept within a rank)."""
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.slow)
    if not config.getoption("--run-long"):
        skip_long = pytest.mark.skip(reason="long: run it with make test-long")
        for item in items:
            if "long" in item.keywords:
                item.add_marker(skip_long)
    stray = sorted({lane_path(item.nodeid) for item in items if "ray_session" in getattr(item, "fixturenames", ())}
                   - set(RAY_SESSION_FILES))
    if stray:
        raise pytest.UsageError(f"tests/conftest.py: add {', '.join(stray)} to RAY_SESSION_FILES (they use ray_session)")
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(scheduling_group(item.nodeid), len(rank)))


@pytest.fixture(scope="session")
def digits():
    """(train, test) ImageSets of the embedded digits dataset at 16x16."""
    from genlab.data import DatasetConfig, load_dataset

    return load_dataset(DatasetConfig())


@pytest.fixture
def blend_file(tmp_path, digits):
    """(the default blend PoisonSet crafted on the digits training set with seed 0, the .npz path it is saved to)."""
    from genlab.attacks import BlendConfig, craft_poisons

    train, _ = digits
    poison = craft_poisons(BlendConfig(), train, seed=0)
    return poison, poison.save(tmp_path / "blend")


@pytest.fixture
def one_torch_thread():
    """Run torch single-threaded for the test, then restore the thread count (the EBM and DDPM tests use it: on a
    shared 2-core machine more threads only oversubscribe)."""
    from genlab.runtime import one_torch_thread as single_thread

    with single_thread():
        yield
