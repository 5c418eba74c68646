"""Issue 27 point 6: the driver's memory stays near one training set whatever the grid size (each set goes to Ray's
object store as it is made), under a real memory limit on a real local Ray.

What is measured: a separate driver process (tests/integration/memory_limit_driver.py, connected to the session's
Ray) builds the training sets of 8 attacks x the `none` setting, each set about 49 MB (the digits training set tiled
128 times), after lowering its RLIMIT_DATA to its data segment after a 1-attack warm-up plus 4 training sets.
RLIMIT_DATA limits the process's private writable memory (heap, anonymous mappings: every numpy array), not the
shared-memory object store Ray maps into it, so it bounds what the driver itself holds: building one set needs
about 2 sets (the poisoned raw copy and the set), holding all 8 sets would need 9-10 and raise a MemoryError."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("memory_limit_driver.py")
ATTACKS = 8


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA and /proc/self/status are Linux's")
def test_driver_builds_a_large_grid_under_a_limit_of_a_few_training_sets(tmp_path, ray_session):
    address = ray_session.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, str(DRIVER), address, str(tmp_path), str(ATTACKS)], capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    report = json.loads(lines[-1])
    assert report["sets"] == ATTACKS and report["poison_labels_in_place"]
    rows, pixels = report["images_shape"][0], report["images_shape"][1] * report["images_shape"][2]
    assert rows * (pixels + 8) == report["one_set"]  # the last set fetched back whole (uint8 images, int64 labels)
    # the limit would not hold every set at once: the sets alone exceed the headroom above the warm-up
    assert (ATTACKS - 1) * report["one_set"] > report["limit"] - report["base"], report
