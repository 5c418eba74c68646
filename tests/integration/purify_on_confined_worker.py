"""The driver of integration/test_ray_job.py's token-auth cluster job: purify through the Ray Data stage with an EBM
whose checkpoint only the driver's node can read, and print one JSON line.

    python tests/integration/purify_on_confined_worker.py CHECKPOINT_DIR

The line says whether a task on each other node sees CHECKPOINT_DIR (it must not: that node runs in a mount
namespace where the directory is an empty tmpfs), the nodes the purifier actor ran on, and whether the stage's
purified rows equal those of the same purifier run here, on the driver, from the original directory.
"""

import json
import sys
from pathlib import Path

import numpy as np
import ray
import torch
from ray.util.state import list_actors

from genlab.purify.ebm import EbmPurifier, EbmSettings
from genlab.purify.stage import PurificationStageConfig, run_stage

STEPS = 3


@ray.remote(num_cpus=1)
def _sees(path: str) -> tuple[str, bool]:
    return ray.get_runtime_context().get_node_id(), (Path(path) / "checkpoint.json").exists()


def main() -> None:
    checkpoint = sys.argv[1]
    torch.set_num_threads(1)  # as the actor (one CPU): the same float reduction order
    ray.init()
    node_sees = dict(ray.get([_sees.remote(checkpoint)]))
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
    rows, labels = np.arange(8), np.zeros(8, dtype=np.int64)
    settings = EbmSettings(checkpoint=checkpoint, langevin_steps=[STEPS], device="cpu")
    staged = run_stage(images, labels, rows, settings, 1, PurificationStageConfig(num_actors=1, batch_size=8))
    here = EbmPurifier(settings, seed=1).purify(images, rows)[STEPS]
    actor_nodes = sorted({a.node_id for a in list_actors(detail=True) if "PurifierActor" in f"{a.class_name} {a.repr_name}"})
    print(json.dumps({"driver_node": ray.get_runtime_context().get_node_id(),
                      "driver_sees": Path(checkpoint, "checkpoint.json").exists(), "node_sees": node_sees,
                      "actor_nodes": actor_nodes, "equal": bool(np.array_equal(staged.by_steps[STEPS], here))}))


if __name__ == "__main__":
    main()
