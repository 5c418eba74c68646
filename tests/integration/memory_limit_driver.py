"""A sweep driver for integration/test_cluster_robustness_memory.py: builds the training sets of a grid of
`attacks` BadNets attacks x the `none` setting under a data-segment limit (RLIMIT_DATA) sized so that one training
set fits and all of them held at once do not; prints one JSON line and exits 0, or 3 on a MemoryError.

    python tests/integration/memory_limit_driver.py <ray gcs address> <work dir> <attacks>

RLIMIT_DATA (Linux >= 4.7) caps the private writable memory of this process (heap, anonymous mmaps, thread stacks),
not shared mappings, so the Ray object store that `ray.put` writes into (shared memory) does not count against it.
The mmap threshold is fixed at 1 MiB so every large numpy array is its own mapping, returned on free: VmData then
follows the live arrays instead of glibc's heap high-water mark.
"""

import ctypes
import json
import sys
from pathlib import Path

ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB, which also stops its dynamic growth

import resource  # noqa: E402

import numpy as np  # noqa: E402
import ray  # noqa: E402

from genlab.attacks import BadNetsConfig, craft_poisons  # noqa: E402
from genlab.data import DatasetConfig, load_dataset  # noqa: E402
from genlab.data.imageset import ImageSet  # noqa: E402
from genlab.sweep import training_sets  # noqa: E402
from genlab.sweep.config import SweepConfig  # noqa: E402
from genlab.sweep.set_store import load_training_set  # noqa: E402

REPEATS = 128  # the digits training set tiled 128 times: one training set of about 49 MB
HEADROOM_SETS = 4  # the limit: the data segment after a 1-attack warm-up plus 4 training sets


def data_segment_bytes() -> int:
    """Return this process's VmData (its private writable memory, what RLIMIT_DATA limits) in bytes."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmData:"))
    return int(line.split()[1]) * 1024


def main() -> int:
    address, work_dir, attacks = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    ray.init(address=address)
    digits = load_dataset(DatasetConfig())[0]
    train = ImageSet(np.tile(digits.images, (REPEATS, 1, 1, 1)), np.tile(digits.labels, REPEATS), digits.classes)
    poison = craft_poisons(BadNetsConfig(), train, seed=0)
    cfg = SweepConfig(work_dir=str(work_dir / "work"))
    settings = [s for entry in cfg.purifiers[:1] for s in entry.settings()]  # none: no purification stage
    one_set = train.images.nbytes + train.labels.nbytes
    training_sets.purify_training_sets(cfg, settings, train, {"warm": poison}, work_dir / "warm")
    base = data_segment_bytes()
    limit = base + HEADROOM_SETS * one_set
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    report = {"one_set": one_set, "base": base, "limit": limit, "attacks": attacks}
    try:
        sets = training_sets.purify_training_sets(cfg, settings, train, {f"a{i}": poison for i in range(attacks)},
                                                  work_dir / "grid")
    except MemoryError as exc:
        print(json.dumps({**report, "memory_error": str(exc)}))
        return 3
    images, labels = load_training_set(sets[-1].data)  # what a trial fetches
    report.update(sets=len(sets), after=data_segment_bytes(), images_shape=list(images.shape),
                  poison_labels_in_place=bool((labels[poison.base_indices] == poison.labels).all()))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
