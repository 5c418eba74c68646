"""A one-machine stand-in for the cloud cluster: Ray's fake multi-node provider config built from
`cluster.yaml`'s node types (test code: integration/test_autoscaling.py runs it, unit/test_cluster_config.py checks it).

Ray's `fake_multinode` provider runs the real autoscaler and starts every "launched" worker
node as local processes (a raylet with the node type's resources), so the autoscaling of
the cloud cluster is checked on one machine:

    RAY_FAKE_CLUSTER=1 AUTOSCALER_UPDATE_INTERVAL_S=1 ray start --head --num-cpus 0 --num-gpus 0 \\
        --port PORT --autoscaling-config fake.yaml      # fake.yaml = fake_cluster_config("cluster.yaml", ...)

A fake GPU node has a logical GPU only (no CUDA): code on it must fall back to the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FAKE_HEAD_NODE_TYPE = "ray.head.default"  # the fake provider tags its head with this type name
FAKE_NODE_OBJECT_STORE_BYTES = 200_000_000  # object store of each fake worker node
EMPTY_LAUNCHER_KEYS = ("file_mounts", "cluster_synced_files", "rsync_exclude", "rsync_filter",
                       "initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                       "head_start_ray_commands", "worker_start_ray_commands")


def scaled_resources(resources: dict[str, float]) -> dict[str, float]:
    """Return `resources` scaled to one machine: every resource kind kept, each amount capped at 1 (0 stays 0)."""
    return {kind: min(amount, 1) for kind, amount in resources.items()}


def fake_cluster_config(cluster_yaml: str | Path, *, gcs_address: str, max_workers_per_type: int = 2,
                        idle_timeout_minutes: float = 0.2) -> dict[str, Any]:
    """Return a `fake_multinode` autoscaling config with `cluster_yaml`'s node types, scaled down.

    Worker types keep their names and resource kinds with amounts of at most 1 (a GPU type keeps
    `GPU: 1`), `min_workers: 0` and at most `max_workers_per_type`; the head type keeps its
    resources under the name the fake provider gives its head (`ray.head.default`) and launches
    nothing. Launched nodes join the GCS at `gcs_address` ("ip:port" of the head started with
    this config); idle workers are removed after `idle_timeout_minutes` (fractions allowed).
    """
    cluster = yaml.safe_load(Path(cluster_yaml).read_text())
    head_type = cluster["head_node_type"]
    node_types: dict[str, Any] = {}
    for name, node in cluster["available_node_types"].items():
        resources = scaled_resources(node["resources"])
        if name == head_type:
            node_types[FAKE_HEAD_NODE_TYPE] = {"resources": resources, "node_config": {}, "max_workers": 0}
        else:
            node_types[name] = {"resources": {**resources, "object_store_memory": FAKE_NODE_OBJECT_STORE_BYTES},
                                "node_config": {}, "min_workers": 0,
                                "max_workers": min(node.get("max_workers", 1), max_workers_per_type)}
    return {"cluster_name": cluster["cluster_name"],
            "max_workers": max_workers_per_type * (len(node_types) - 1),
            "upscaling_speed": cluster.get("upscaling_speed", 1.0),
            "idle_timeout_minutes": idle_timeout_minutes,
            "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                         "disable_launch_config_check": True, "gcs_address": gcs_address},
            "auth": {}, "docker": {},
            "available_node_types": node_types,
            "head_node_type": FAKE_HEAD_NODE_TYPE,
            **{key: ({} if key == "file_mounts" else []) for key in EMPTY_LAUNCHER_KEYS}}
