"""bench/sweep_cost.py on a tiny sweep: shared chains and cached parts give the naive way's images exactly,
for >= 10x fewer gradient evaluations with repeated seeds, and a second sweep costs none."""

import json
import subprocess
import sys

from tests.helpers import REPO


def test_shared_purification_equals_the_naive_sweep_at_a_tenth_of_the_gradients():
    out = subprocess.run([sys.executable, str(REPO / "bench/sweep_cost.py"), "--images", "48", "--steps", "2", "3", "4",
                          "5", "--seeds", "3"], capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["max_abs_pixel_diff"] == 0
    assert result["gradient_evaluation_reduction"] >= 10
    assert result["naive_gradient_evaluations"] == 3 * 3 * 48 * (2 + 3 + 4 + 5)  # seeds x attacks x images x sum(T)
    assert result["second_sweep_gradient_evaluations"] == 0
