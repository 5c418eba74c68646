"""jobs/craft_poisons.py: bad config, per-trial resume after SIGKILL, the sweep reusing its cache (the cache of a
whole crafted set: unit/test_craft_poisons.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from genlab.config import validate
from genlab.sweep.config import SweepConfig
from genlab.sweep.training_sets import poison_for
from tests.helpers import REPO

JOB = [sys.executable, str(REPO / "jobs" / "craft_poisons.py"), "--config", str(REPO / "conf" / "attacks" / "badnets.yaml")]
# Four Witches' Brew trials sharing one adversarial class (so they merge), small enough for CPU.
TARGETED = {"name": "gradient_matching", "trials": 4, "budget": 0.01, "epsilon": 16, "adversarial_class": 3,
            "steps": 60, "surrogate": {"epochs": 2}}


def test_unknown_attack_name_exits_2_naming_the_key(tmp_path):
    done = subprocess.run([*JOB, "attack.name=bogus"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: config key attack: Input tag 'bogus'")


def _run_job(args, cwd, **popen):
    return subprocess.Popen([*JOB, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def test_killed_job_resumes_per_trial_and_equals_an_uninterrupted_run(digits, tmp_path, mlflow_store):
    train, test = digits
    work = tmp_path / "work"
    args = [f"attack={json.dumps(TARGETED)}", f"work_dir={work}", "--out", str(tmp_path / "out")]
    job = _run_job(args, tmp_path)
    first_trial = None
    deadline = time.monotonic() + 240
    while first_trial is None and time.monotonic() < deadline and job.poll() is None:
        first_trial = next(iter(sorted(work.glob("poisons/*/trial-*.json"))), None)
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert first_trial is not None, "no trial finished before the deadline"
    finished = sorted(first_trial.parent.glob("trial-*.npz"))
    finished = [p for p in finished if p.with_suffix(".json").is_file()]
    assert 1 <= len(finished) < TARGETED["trials"], "the kill must land between trials"
    stamps = {p: p.stat().st_mtime_ns for p in finished}

    rerun = _run_job(args, tmp_path)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    assert output.count("finished before, reused") == len(finished)
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["crafted_trials"] == list(range(len(finished), TARGETED["trials"]))

    sweep = validate(SweepConfig, {"attacks": [TARGETED], "work_dir": str(work)})
    stamps = {p: p.stat().st_mtime_ns for p in first_trial.parent.glob("*.npz")}
    resumed = poison_for(sweep, sweep.attacks[0], [], train, test, work / "poisons")
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items()), "the sweep must reuse the cache"
    assert len(resumed.target_test_indices) == TARGETED["trials"]
    # The uninterrupted run is a job too: same process settings (torch threads) as the killed one.
    fresh = tmp_path / "fresh"
    whole = _run_job([f"attack={json.dumps(TARGETED)}", f"work_dir={fresh}", "--out", str(fresh / "out")], tmp_path)
    output, _ = whole.communicate(timeout=300)
    assert whole.returncode == 0, output
    uninterrupted = poison_for(sweep, sweep.attacks[0], [], train, test, fresh / "poisons")
    assert uninterrupted.hash == resumed.hash
    moved = np.abs(resumed.images.astype(int) - train.images[resumed.base_indices].astype(int))
    assert moved.max() <= TARGETED["epsilon"]
