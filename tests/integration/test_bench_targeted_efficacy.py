"""bench/targeted_efficacy.py on two tiny trials fanned out over a local Ray: one JSON line whose rates and
shifts agree with its per-trial lines, crafting only on the first run, and a clear error for an attack that
is not targeted."""

import json
import subprocess
import sys

import pytest
from scipy.stats import binomtest, fisher_exact

from tests.helpers import REPO

BENCH = str(REPO / "bench" / "targeted_efficacy.py")
TINY = ["attack.trials=2", "attack.steps=3", "attack.surrogate.epochs=2", "attack.surrogate.width=8",
        "attack.snapshot_epochs=[1]"]


def test_bench_reports_both_victims_and_reuses_the_crafted_trials(tmp_path):
    """parallel=true: trials and victims run as tasks on a local Ray (each victim on one thread, so both runs agree)."""
    done = [subprocess.run([sys.executable, BENCH, *TINY, "parallel=true", f"work_dir={tmp_path}"], capture_output=True,
                           text=True, timeout=300, check=True) for _ in range(2)]
    assert all("Started a local Ray instance" in run.stderr for run in done)
    runs = [run.stdout for run in done]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out in runs)
    assert first == second  # same cached poisons, same victim seed
    assert first["trials"] == 2 and len(first["log_prob_shifts"]) == 2
    assert first["targets_moved_up"] == sum(shift > 0 for shift in first["log_prob_shifts"])
    assert first["poisoned_success"]["successes"] == runs[0].count("(flipped)")
    # the p-values are the tests of the counts beside them (two trials are too few for either to be small)
    table = [[rate["successes"], rate["trials"] - rate["successes"]]
             for rate in (first["poisoned_success"], first["clean_success"])]
    assert first["fisher_p"] == pytest.approx(fisher_exact(table).pvalue)
    assert first["sign_test_p"] == pytest.approx(binomtest(first["targets_moved_up"], first["trials"]).pvalue)
    assert "crafted in" in runs[0] and "crafted in" not in runs[1] and runs[1].count("finished before, reused") == 2


def test_bench_refuses_an_attack_that_is_not_targeted():
    done = subprocess.run([sys.executable, BENCH, "--config", str(REPO / "conf" / "attacks" / "blend.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "attack.name: blend is not a targeted attack" in done.stderr
